import AsyncHTTPClient
import ConclaveProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A real browser for the web console's tests: Debian's `chromedriver`
/// (package chromium-driver) in a process of its own on 127.0.0.1, driving
/// headless `chromium` over the W3C WebDriver protocol. `.ci/run` installs
/// both; `$CONCLAVE_CHROMEDRIVER` and `$CONCLAVE_CHROMIUM` name others.
/// Stopped by its PID, with the browsers of the sessions still open.
public final class ChromeDriverProcess: Sendable {
    /// The driver's base URL (`http://127.0.0.1:PORT`).
    public let url: String
    /// The driver's log: every command and its answer.
    public let logFile: String
    private let process: Process
    private let exited: DispatchSemaphore
    private let browser: String
    /// The sessions not yet closed, by id: their browser's PID and profile directory.
    private let openSessions = Mutex<[String: OpenBrowser]>([:])

    private struct OpenBrowser {
        let pid: Int32?
        let profile: String
    }

    /// A program: the one `variable` names, or the first of `names` on PATH.
    private static func executable(_ variable: String, _ names: [String]) -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment[variable], !path.isEmpty { return FileManager.default.isExecutableFile(atPath: path) ? path : nil }
        let directories = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        for name in names {
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        return nil
    }

    /// Starts chromedriver, or returns nil (and says why; a test failure
    /// with `CONCLAVE_REQUIRE_BROWSER=1`, as in CI) when chromedriver or
    /// chromium is not installed.
    public static func start(logDirectory: String) async throws -> ChromeDriverProcess? {
        let driver = executable("CONCLAVE_CHROMEDRIVER", ["chromedriver"])
        let browser = executable("CONCLAVE_CHROMIUM", ["chromium", "chromium-browser"])
        guard let driver, let browser else {
            let missing = [driver == nil ? "chromedriver" : nil, browser == nil ? "chromium" : nil].compactMap { $0 }
            let reason =
                "no \(missing.joined(separator: " and ")) ($CONCLAVE_CHROMEDRIVER and $CONCLAVE_CHROMIUM, else PATH;"
                + " .ci/run installs Debian's chromium and chromium-driver)"
            if ProcessInfo.processInfo.environment["CONCLAVE_REQUIRE_BROWSER"] == "1" {
                Issue.record("a browser is required: \(reason)")
            } else {
                print("Browser not available: \(reason); skipping")
            }
            return nil
        }
        return try await offThePool { try launch(driver: driver, browser: browser, logDirectory: logDirectory) }
    }

    private static func launch(driver: String, browser: String, logDirectory: String) throws -> ChromeDriverProcess {
        let name = logDirectory + "/chromedriver-\(UUID().uuidString.prefix(6))"
        let log = name + ".log"
        let errors = name + ".stderr"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: driver)
        // Port 0: chromedriver takes a free port itself and says which.
        process.arguments = ["--port=0", "--log-path=" + log]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: errors)
        process.standardInput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        // It listens before it prints "ChromeDriver was started successfully on port N." (its fourth
        // line, and its last on standard output). If that never comes, the watchdog ends the wait.
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
        var seen = Data()
        var port: Int?
        while port == nil {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
            port = listeningPort(in: String(decoding: seen, as: UTF8.self))
        }
        watchdog.cancel()
        guard let port else {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let text = String(decoding: seen, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw TestSupportError("chromedriver did not start (see \(log) and \(errors)): \(text)")
        }
        return ChromeDriverProcess(url: "http://127.0.0.1:\(port)", logFile: log, process: process, exited: exited, browser: browser)
    }

    /// The port in chromedriver's complete "… started successfully on port N." line, if it is there yet.
    private static func listeningPort(in output: String) -> Int? {
        guard let found = output.range(of: "started successfully on port ") else { return nil }
        let rest = output[found.upperBound...]
        guard let end = rest.firstIndex(of: "\n") else { return nil }
        return Int(rest[..<end].trimmingCharacters(in: CharacterSet(charactersIn: ". \r")))
    }

    private init(url: String, logFile: String, process: Process, exited: DispatchSemaphore, browser: String) {
        self.url = url
        self.logFile = logFile
        self.process = process
        self.exited = exited
        self.browser = browser
    }

    /// A new browser (headless chromium, its own fresh profile) with a
    /// window of this size: the outer size, so the page's viewport is
    /// smaller (1280×800 gives a 1280×657 viewport). `acceptInsecureCertificates`
    /// lets it open a test server's self-signed HTTPS.
    public func session(windowWidth: Int = 1280, windowHeight: Int = 800, acceptInsecureCertificates: Bool = false) async throws
        -> BrowserSession
    {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-chromium-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        // As root (CI) chromium runs only without its sandbox.
        let options: [String: Any] = [
            "binary": browser,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=\(windowWidth),\(windowHeight)", "--user-data-dir=" + profile,
            ],
        ]
        // A page that does not load fails its command before the 30-second HTTP timeout does.
        let capabilities: [String: Any] = [
            "browserName": "chrome",
            "acceptInsecureCerts": acceptInsecureCertificates,
            "timeouts": ["pageLoad": 25_000, "implicit": 0],
            "goog:chromeOptions": options,
        ]
        let created: NewSession
        do {
            created = try await WebDriverEndpoint(base: url).value(
                of: NewSession.self, .POST, "/session", ["capabilities": ["alwaysMatch": capabilities]])
        } catch {
            try? FileManager.default.removeItem(atPath: profile)
            throw error
        }
        openSessions.withLock { $0[created.sessionId] = OpenBrowser(pid: created.capabilities.processID, profile: profile) }
        return BrowserSession(id: created.sessionId, driver: self)
    }

    /// A session the browser has closed: its profile goes too.
    fileprivate func closed(_ session: String) {
        guard let browser = openSessions.withLock({ $0.removeValue(forKey: session) }) else { return }
        try? FileManager.default.removeItem(atPath: browser.profile)
    }

    /// Stops the browsers of the sessions still open (chromedriver leaves
    /// them running when it is stopped), then chromedriver: SIGTERM, and
    /// SIGKILL if either has not exited after five seconds.
    public func stop() {
        let browsers = openSessions.withLock { sessions in
            defer { sessions = [:] }
            return Array(sessions.values)
        }
        let pids = browsers.compactMap(\.pid)
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        while pids.contains(where: Self.isRunning), Date() < deadline { usleep(20_000) }
        for pid in pids where Self.isRunning(pid) { kill(pid, SIGKILL) }
        if process.isRunning {
            process.terminate()
            if exited.wait(timeout: .now() + 5) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            } else {
                exited.signal()  // later waits return at once
            }
        }
        for browser in browsers { try? FileManager.default.removeItem(atPath: browser.profile) }
    }

    /// Whether a process that is not our child still runs. The browser is
    /// chromedriver's child, which leaves it a zombie until it is reaped:
    /// that has exited too.
    private static func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // Linux: the state is the field after the command name's closing parenthesis.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")") else {
            return true
        }
        return !stat[stat.index(after: end)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    deinit { stop() }
}

/// One browser (a WebDriver session): navigation, elements found by CSS
/// selector, the keyboard, cookies, screenshots. Every command throws
/// ``TestSupportError`` with WebDriver's error and message when it fails.
/// No script execution: the console's Content-Security-Policy forbids scripts.
public struct BrowserSession: Sendable {
    public let id: String
    private let driver: ChromeDriverProcess
    private let endpoint: WebDriverEndpoint

    fileprivate init(id: String, driver: ChromeDriverProcess) {
        self.id = id
        self.driver = driver
        self.endpoint = WebDriverEndpoint(base: driver.url + "/session/" + id)
    }

    /// The first element matching `selector`, waiting up to `seconds` for
    /// it to appear (WebDriver's implicit wait, for this lookup only): after
    /// a click that loads a page, the new page's element.
    public func waitForElement(css selector: String, seconds: Double = 10) async throws -> BrowserElement {
        try await endpoint.perform(.POST, "/timeouts", ["implicit": Int(seconds * 1000)])
        do {
            let found = try await element(css: selector)
            try await endpoint.perform(.POST, "/timeouts", ["implicit": 0])
            return found
        } catch {
            try? await endpoint.perform(.POST, "/timeouts", ["implicit": 0])
            throw error
        }
    }

    /// Opens a URL and waits for the page to load.
    public func go(to url: String) async throws { try await endpoint.perform(.POST, "/url", ["url": url]) }

    public func currentURL() async throws -> String { try await endpoint.value(of: String.self, .GET, "/url") }

    public func title() async throws -> String { try await endpoint.value(of: String.self, .GET, "/title") }

    /// The page's DOM as HTML, as it is now.
    public func pageSource() async throws -> String { try await endpoint.value(of: String.self, .GET, "/source") }

    /// The first element that matches; throws ("no such element") if none does. No implicit wait.
    public func element(css selector: String) async throws -> BrowserElement {
        BrowserElement(endpoint, try await endpoint.find(css: selector, from: ""))
    }

    /// Every element that matches, in document order (none: empty).
    public func elements(css selector: String) async throws -> [BrowserElement] {
        try await endpoint.findAll(css: selector, from: "").map { BrowserElement(endpoint, $0) }
    }

    public func exists(css selector: String) async throws -> Bool { try await !endpoint.findAll(css: selector, from: "").isEmpty }

    /// Clears a text field, then types `text` into it.
    public func fill(css selector: String, with text: String) async throws {
        let field = try await element(css: selector)
        try await field.clear()
        try await field.sendKeys(text)
    }

    public func click(css selector: String) async throws { try await element(css: selector).click() }

    /// Chooses the `<option>` with this value in a `<select>`.
    public func select(css selector: String, value: String) async throws {
        let list = try await element(css: selector)
        guard let option = try await list.elements(css: "option[value=\(cssString(value))]").first else {
            throw TestSupportError("\(selector) has no option with value \(value)")
        }
        try await option.click()
        let chosen = try await list.property("value")
        guard chosen == value else { throw TestSupportError("\(selector) has \(chosen ?? "no value") after choosing \(value)") }
    }

    /// The element's rendered text (empty when it is hidden).
    public func text(css selector: String) async throws -> String { try await element(css: selector).text() }

    /// A PNG of the viewport.
    public func screenshot() async throws -> Data {
        let encoded = try await endpoint.value(of: String.self, .GET, "/screenshot")
        guard let png = Data(base64Encoded: encoded) else { throw TestSupportError("WebDriver sent a screenshot that is not base64") }
        return png
    }

    /// Writes a PNG of the viewport to a file.
    public func screenshot(to path: String) async throws {
        try await screenshot().write(to: URL(fileURLWithPath: path))
    }

    /// Resizes the window (its outer size, as at ``ChromeDriverProcess/session(windowWidth:windowHeight:acceptInsecureCertificates:)``).
    public func setWindowSize(width: Int, height: Int) async throws {
        try await endpoint.perform(.POST, "/window/rect", ["width": width, "height": height])
    }

    /// The cookies the current page's URL sees, HttpOnly ones included.
    public func cookies() async throws -> [BrowserCookie] { try await endpoint.value(of: [BrowserCookie].self, .GET, "/cookie") }

    public func cookie(named name: String) async throws -> BrowserCookie? { try await cookies().first { $0.name == name } }

    /// Deletes the cookies the current page's URL sees.
    public func deleteAllCookies() async throws { try await endpoint.perform(.DELETE, "/cookie") }

    /// Presses and releases a key (with Shift held down if `shift`), as a
    /// user would: to whatever has the focus.
    public func press(_ key: BrowserKey, shift: Bool = false) async throws {
        let keys = (shift ? [BrowserKey.shift.rawValue] : []) + [key.rawValue]
        let strokes = keys.map { ["type": "keyDown", "value": $0] } + keys.reversed().map { ["type": "keyUp", "value": $0] }
        let keyboard: [String: Any] = ["type": "key", "id": "keyboard", "actions": strokes]
        try await endpoint.perform(.POST, "/actions", ["actions": [keyboard]])
    }

    /// Moves the focus as Tab does (Shift+Tab if `backwards`).
    public func pressTab(backwards: Bool = false) async throws { try await press(.tab, shift: backwards) }

    /// The element that has the focus (the body when none has).
    public func activeElement() async throws -> BrowserElement {
        BrowserElement(endpoint, try await endpoint.value(of: ElementReference.self, .GET, "/element/active").id)
    }

    /// The `id` attribute of the element that has the focus (nil if it has none).
    public func activeElementID() async throws -> String? { try await activeElement().attribute("id") }

    /// Ends the session: the browser quits and its profile is deleted.
    public func close() async throws {
        try await endpoint.perform(.DELETE, "")
        driver.closed(id)
    }
}

/// An element of a ``BrowserSession``'s page (until the page changes).
public struct BrowserElement: Sendable {
    /// WebDriver's reference to the element.
    public let id: String
    private let endpoint: WebDriverEndpoint

    fileprivate init(_ session: WebDriverEndpoint, _ id: String) {
        self.endpoint = session
        self.id = id
    }

    private var path: String { "/element/" + id }

    /// Clicks the element's centre (scrolled into view); fails if it is hidden or covered.
    public func click() async throws { try await endpoint.perform(.POST, path + "/click") }

    /// Types into the element (it takes the focus first).
    public func sendKeys(_ text: String) async throws { try await endpoint.perform(.POST, path + "/value", ["text": text]) }

    /// Empties a text field.
    public func clear() async throws { try await endpoint.perform(.POST, path + "/clear") }

    /// The rendered text (empty when the element is hidden).
    public func text() async throws -> String { try await endpoint.value(of: String.self, .GET, path + "/text") }

    /// An attribute as the markup has it (nil if absent): the `value`
    /// attribute of a field is its initial value; ``property(_:)`` has the current one.
    public func attribute(_ name: String) async throws -> String? {
        try await endpoint.value(of: Scalar.self, .GET, path + "/attribute/" + pathSegment(name)).text
    }

    /// A DOM property as text (`value`, `checked`, `tagName`…): nil if
    /// it is undefined, null, or an object.
    public func property(_ name: String) async throws -> String? {
        try await endpoint.value(of: Scalar.self, .GET, path + "/property/" + pathSegment(name)).text
    }

    /// The element's tag name, lowercase.
    public func tagName() async throws -> String { try await endpoint.value(of: String.self, .GET, path + "/name") }

    public func isDisplayed() async throws -> Bool { try await endpoint.value(of: Bool.self, .GET, path + "/displayed") }

    /// Whether a checkbox or radio button is checked, or an option selected.
    public func isSelected() async throws -> Bool { try await endpoint.value(of: Bool.self, .GET, path + "/selected") }

    public func isEnabled() async throws -> Bool { try await endpoint.value(of: Bool.self, .GET, path + "/enabled") }

    /// The first element inside this one that matches.
    public func element(css selector: String) async throws -> BrowserElement {
        BrowserElement(endpoint, try await endpoint.find(css: selector, from: path))
    }

    /// Every element inside this one that matches.
    public func elements(css selector: String) async throws -> [BrowserElement] {
        try await endpoint.findAll(css: selector, from: path).map { BrowserElement(endpoint, $0) }
    }
}

/// Keys for ``BrowserSession/press(_:shift:)``: WebDriver's code points for them.
public enum BrowserKey: String, Sendable {
    case backspace = "\u{E003}"
    case tab = "\u{E004}"
    case enter = "\u{E007}"
    case shift = "\u{E008}"
    case escape = "\u{E00C}"
    case space = "\u{E00D}"
    case end = "\u{E010}"
    case home = "\u{E011}"
    case arrowLeft = "\u{E012}"
    case arrowUp = "\u{E013}"
    case arrowRight = "\u{E014}"
    case arrowDown = "\u{E015}"
}

/// A cookie as the browser keeps it.
public struct BrowserCookie: Sendable, Equatable, Decodable {
    public let name: String
    public let value: String
    public let path: String?
    public let domain: String?
    public let httpOnly: Bool
    public let secure: Bool
    /// "Strict", "Lax" or "None".
    public let sameSite: String?
    /// When it expires (seconds since 1970); nil for a session cookie.
    public let expiry: Int?

    private enum CodingKeys: String, CodingKey {
        case name, value, path, domain, httpOnly, secure, sameSite, expiry
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        value = try container.decode(String.self, forKey: .value)
        path = try container.decodeIfPresent(String.self, forKey: .path)
        domain = try container.decodeIfPresent(String.self, forKey: .domain)
        httpOnly = try container.decodeIfPresent(Bool.self, forKey: .httpOnly) ?? false
        secure = try container.decodeIfPresent(Bool.self, forKey: .secure) ?? false
        sameSite = try container.decodeIfPresent(String.self, forKey: .sameSite)
        expiry = (try? container.decodeIfPresent(Double.self, forKey: .expiry)).map { Int($0) }
    }
}

/// The commands under one WebDriver URL (the driver's, or a session's):
/// JSON over HTTP, each answer `{"value": …}`, an error's value
/// `{"error": …, "message": …}` with a 4xx or 5xx status.
private struct WebDriverEndpoint: Sendable {
    let base: String

    /// A command whose answer's value is `Value`.
    func value<Value: Decodable>(of type: Value.Type, _ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws
        -> Value
    {
        let answer = try await send(method, path, body)
        do {
            return try JSONDecoder().decode(Envelope<Value>.self, from: answer).value
        } catch {
            throw TestSupportError(
                "WebDriver \(command(method, path)): unexpected answer \(String(decoding: answer.prefix(500), as: UTF8.self))")
        }
    }

    /// A command whose answer's value (null) does not matter.
    func perform(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws {
        _ = try await send(method, path, body)
    }

    /// The reference of the first element matching a CSS selector, from the page (`scope` "") or an element (its path).
    func find(css selector: String, from scope: String) async throws -> String {
        try await value(of: ElementReference.self, .POST, scope + "/element", ["using": "css selector", "value": selector]).id
    }

    func findAll(css selector: String, from scope: String) async throws -> [String] {
        try await value(of: [ElementReference].self, .POST, scope + "/elements", ["using": "css selector", "value": selector]).map(\.id)
    }

    /// A command for an error message: its method and path, element references left out.
    private func command(_ method: HTTPMethod, _ path: String) -> String {
        "\(method) " + path.split(separator: "/", omittingEmptySubsequences: false).map { $0.count > 24 ? "…" : $0 }.joined(separator: "/")
    }

    /// Sends a command; returns the answer's body, or throws WebDriver's error.
    private func send(_ method: HTTPMethod, _ path: String, _ body: [String: Any]?) async throws -> Data {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if method == .POST {
            // A POST always carries a JSON object, empty if the command has no parameters.
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body ?? [:])))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let answer = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        guard response.status.code >= 300 else { return answer }
        guard let failure = try? JSONDecoder().decode(Envelope<Failure>.self, from: answer).value else {
            throw TestSupportError(
                "WebDriver \(command(method, path)): HTTP \(response.status.code) \(String(decoding: answer.prefix(500), as: UTF8.self))")
        }
        // The message ends with "(Session info: chrome=…)"; the stack trace (a field of its own) is left out.
        let message = failure.message.split(separator: "\n").filter { !$0.contains("(Session info:") }.joined(separator: "\n")
        let text = message.hasPrefix(failure.error) ? message : failure.error + ": " + message
        throw TestSupportError("WebDriver \(command(method, path)): \(text)")
    }
}

private struct Envelope<Value: Decodable>: Decodable {
    let value: Value
}

private struct Failure: Decodable {
    let error: String
    let message: String
}

/// W3C WebDriver's web element reference (chromedriver's answers use this key).
private struct ElementReference: Decodable {
    let id: String

    private enum CodingKeys: String, CodingKey {
        case id = "element-6066-11e4-a52e-4f735466cecf"
    }
}

private struct NewSession: Decodable {
    let sessionId: String
    let capabilities: Capabilities

    struct Capabilities: Decodable {
        /// The browser's PID (chromedriver's own capability).
        let processID: Int32?

        private enum CodingKeys: String, CodingKey {
            case processID = "goog:processID"
        }
    }
}

/// A JSON value as text: a string as it is, a boolean or number written
/// out; nil for null, a list or an object.
private struct Scalar: Decodable {
    let text: String?

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            text = nil
        } else if let string = try? container.decode(String.self) {
            text = string
        } else if let bool = try? container.decode(Bool.self) {
            text = bool ? "true" : "false"
        } else if let integer = try? container.decode(Int.self) {
            text = String(integer)
        } else if let number = try? container.decode(Double.self) {
            text = String(number)
        } else {
            text = nil
        }
    }
}

/// A CSS string literal: quotes and backslashes escaped, control characters as hex escapes.
private func cssString(_ text: String) -> String {
    var literal = "\""
    for scalar in text.unicodeScalars {
        if scalar == "\"" || scalar == "\\" {
            literal += "\\" + String(scalar)
        } else if scalar.value < 0x20 || scalar.value == 0x7F {
            literal += "\\" + String(scalar.value, radix: 16) + " "
        } else {
            literal.unicodeScalars.append(scalar)
        }
    }
    return literal + "\""
}

/// A name (an attribute's, a property's) as one URL path segment.
private func pathSegment(_ name: String) -> String {
    PercentEncoding.unreserved(name)
}
