import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

@testable import ConclaveServer

/// The web console in a real browser: headless Chromium driven over
/// WebDriver (Debian's chromium and chromium-driver; `.ci/run` installs
/// them), against a server on 127.0.0.1, with users whose devices run the
/// SDK. Screenshots of each page go to a directory the test prints.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ConsoleBrowserTests {
    static let password = "a long console password"

    /// A browser that has signed in; each page it visits is saved as NAME.png.
    struct Browser {
        let session: BrowserSession
        let base: String
        let shots: String

        func open(_ path: String) async throws { try await session.go(to: base + path) }
        func shot(_ name: String) async throws { try await session.screenshot(to: shots + "/\(name).png") }
        /// The notice a finished action leaves on the page it lands on.
        func notice() async throws -> String { try await session.waitForElement(css: "#notice").text() }
        /// The error of the page a refused form lands on.
        func error() async throws -> String { try await session.waitForElement(css: "#error").text() }

        /// Runs the steps; on a failure, saves the page as failure.png first.
        func steps(_ body: () async throws -> Void) async throws {
            do {
                try await body()
            } catch {
                try? await shot("failure")
                throw error
            }
        }

        static func screenshotDirectory(_ test: String) throws -> String {
            let root =
                ProcessInfo.processInfo.environment["CONCLAVE_SCREENSHOT_DIR"] ?? NSTemporaryDirectory() + "conclave-console-screenshots"
            let directory = root + "/" + test
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            print("console screenshots: \(directory)")
            return directory
        }

        func signIn(_ name: String, code: String = "") async throws {
            try await open("/admin/login")
            try await session.fill(css: "#name", with: name)
            try await session.fill(css: "#password", with: ConsoleBrowserTests.password)
            if !code.isEmpty { try await session.fill(css: "#code", with: code) }
            try await session.click(css: "#sign-in")
            _ = try await session.waitForElement(css: "#sign-out")
        }

        func signOut() async throws {
            try await session.click(css: "#sign-out")
            _ = try await session.waitForElement(css: "#login-form")
        }
    }

    @Test(
        "An owner signs in with an authenticator, adds a user, sets a group's policy, moves a user, suspends, federates, verifies the audit log"
    )
    func ownerTour() async throws {
        try await TestNetwork.run(.sqlite) { network in
            guard let driver = try await ChromeDriverProcess.start(logDirectory: network.root) else { return }
            defer { driver.stop() }
            let created = try await network.admin.addAdministrator(
                CreateAdministrator(name: try #require(AdminName("root")), role: .owner, password: Self.password, totp: true))
            let secret = try #require(created.totpSecret)
            let totp = try #require(TOTP(base32Secret: secret))
            try await network.users("alice", "bob")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let room = try await alice.createRoom(name: "project", members: [network.address("bob")])
            _ = try await bob.receive()

            let session = try await driver.session()
            let browser = Browser(session: session, base: network.url, shots: try Browser.screenshotDirectory("owner"))
            try await browser.steps {

                // Sign-in: labelled fields in keyboard order; the authenticator code is required.
                try await browser.open("/admin/login")
                try await browser.shot("01-sign-in")
                try await session.click(css: "#name")
                try await session.pressTab()
                #expect(try await session.activeElementID() == "password")
                try await session.pressTab()
                #expect(try await session.activeElementID() == "code")
                try await session.fill(css: "#name", with: "root")
                try await session.fill(css: "#password", with: Self.password)
                try await session.click(css: "#sign-in")
                #expect(try await browser.error().contains("wrong name, password or authenticator code"))
                try await browser.signIn("root", code: totp.code(at: Date()))
                let cookie = try #require(try await session.cookie(named: "conclave_console"))
                #expect(cookie.httpOnly && cookie.sameSite == "Strict")
                #expect(try await session.text(css: "#stat-users") == "2")
                try await browser.shot("02-dashboard")

                // Add a user.
                try await browser.open("/admin/users")
                try await session.fill(css: "#new-name", with: "carol")
                try await session.fill(css: "#new-password", with: network.password)
                try await session.select(css: "#new-group", value: "default")
                try await session.click(css: "#add-user")
                #expect(try await browser.notice().contains("added"))
                #expect(try await network.admin.users().map(\.name.value).sorted() == ["alice", "bob", "carol"])
                try await browser.open("/admin/users")
                try await browser.shot("03-users")

                // A security group whose members may only talk to each other, and bob moved into it:
                // the server removes bob from the room with alice, and alice's client commits it.
                try await browser.open("/admin/groups")
                try await session.fill(css: "#group-name", with: "contractors")
                try await session.click(css: "#add-group")
                #expect(try await browser.notice().contains("created"))
                try await session.fill(css: "#may-message", with: "contractors")
                try await session.fill(css: "#ttl-max", with: "a week")
                try await session.click(css: "#save-policy")
                #expect(try await browser.error().contains("ttl-max takes a duration"))
                #expect(try await session.element(css: "#may-message").property("value") == "contractors")
                try await session.fill(css: "#ttl-max", with: "7d")
                try await session.click(css: "#save-policy")
                #expect(try await browser.notice().contains("saved"))
                try await browser.shot("04-security-group")
                try await browser.open("/admin/users/bob")
                try await session.select(css: "#move-group", value: "contractors")
                try await session.click(css: "#move")
                #expect(try await browser.notice().contains("moved"))
                try await browser.shot("05-user")
                try await alice.settle(room.id, to: [network.address("alice")])
                #expect(try await network.admin.users().first { $0.name.value == "bob" }?.group == "contractors")

                // Suspend carol; the confirmation page for a destructive action.
                try await browser.open("/admin/users/carol")
                try await session.click(css: "#suspend")
                #expect(try await browser.notice().contains("suspended"))
                #expect(try await network.admin.users().first { $0.name.value == "carol" }?.suspended == true)
                try await session.click(css: "#delete-user")
                _ = try await session.waitForElement(css: "#confirm-form")
                try await browser.shot("06-confirm")
                try await session.click(css: "#cancel")
                _ = try await session.waitForElement(css: "#user-status")
                #expect(try await network.admin.users().count == 3)

                // Federation: add a peer by its key fingerprint, then remove it.
                try await browser.open("/admin/federation")
                try await session.fill(css: "#peer-domain", with: "globex.example")
                try await session.fill(css: "#peer-url", with: "http://127.0.0.1:9")
                try await session.fill(css: "#peer-fingerprint", with: "sha256:" + String(repeating: "ab", count: 32))
                try await session.click(css: "#add-peer")
                #expect(try await browser.notice().contains("added"))
                #expect(try await network.admin.federation().peers.map(\.domain.value) == ["globex.example"])
                try await browser.shot("07-federation")
                try await session.click(css: ".remove-peer")
                try await session.click(css: "#confirm")
                #expect(try await browser.notice().contains("removed"))
                #expect(try await network.admin.federation().peers.isEmpty)

                // The audit log: every action above under root's name, and the chain verified.
                try await browser.open("/admin/audit?actor=admin:root")
                try await session.click(css: "#verify")
                #expect(try await session.waitForElement(css: "#verification").text().contains("intact"))
                let table = try await session.text(css: "#audit-table")
                for action in [
                    "user.create", "group.create", "group.update", "user.update", "user.suspend", "federation.add", "federation.remove",
                ] {
                    #expect(table.contains(action), "no \(action) by admin:root in the console's audit log")
                }
                try await browser.shot("08-audit")
                try await browser.open("/admin/settings")
                try await browser.shot("09-settings")

                // A phone-width screen: the same pages, nothing cut off.
                try await session.setWindowSize(width: 390, height: 844)
                try await browser.open("/admin/users/bob")
                #expect(try await session.element(css: "#move").isDisplayed())
                try await browser.shot("10-phone-user")
            }
            try await session.close()
        }
    }

    @Test("A helpdesk administrator sees no owner pages, cannot reach them, and a forged or cross-site POST is refused")
    func helpdesk() async throws {
        try await TestNetwork.run(.sqlite) { network in
            guard let driver = try await ChromeDriverProcess.start(logDirectory: network.root) else { return }
            defer { driver.stop() }
            _ = try await network.admin.addAdministrator(
                CreateAdministrator(name: try #require(AdminName("helen")), role: .helpdesk, password: Self.password))
            try await network.users("alice")
            let session = try await driver.session()
            let browser = Browser(session: session, base: network.url, shots: try Browser.screenshotDirectory("helpdesk"))
            try await browser.steps {
                try await browser.signIn("helen")
                #expect(try await !session.exists(css: "nav a[href='/admin/federation']"))
                #expect(try await !session.exists(css: "nav a[href='/admin/audit']"))
                try await browser.open("/admin/federation")
                #expect(try await session.waitForElement(css: "#error-message").text().contains("helpdesk role may not"))
                try await browser.shot("11-helpdesk-refused")
                // What helpdesk may do: suspend from the user's page (no delete, no move there).
                try await browser.open("/admin/users/alice")
                #expect(try await !session.exists(css: "#delete-user"))
                #expect(try await !session.exists(css: "#move"))
                try await session.click(css: "#suspend")
                #expect(try await browser.notice().contains("suspended"))

                // The browser's session cookie in a forged request: an owner-only action, with helen's valid CSRF token.
                let console = ConsoleClient(baseURL: network.url)
                let cookie = try #require(try await session.cookie(named: "conclave_console"))
                await console.setCookie("conclave_console", cookie.value)
                _ = try await console.get("/admin/users/alice")
                #expect(try await console.post("/admin/federation/mode", [("mode", "open")]).status == 403)
                #expect(try await network.admin.federation().mode != .open)
                // A cross-site POST carries the cookie (if a browser sent it) but not the token: refused, nothing done.
                #expect(
                    try await console.post("/admin/users/alice/unsuspend", csrf: false, headers: [("Origin", "https://evil.example")])
                        .status == 403)
                #expect(try await network.admin.users().first?.suspended == true)
                try await browser.signOut()
            }
            try await session.close()
        }
    }
}
