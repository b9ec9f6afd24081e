import Foundation
import MLS

/// The outcome of running one vector file (or the part of it for one suite).
public struct VectorResult: Sendable, Hashable {
    public var passed = 0
    public var failed = 0
    public var skipped = 0
    /// One line per failed entry: its index and what did not match. No secrets.
    public var failures: [String] = []

    public init() {}

    public static func + (lhs: VectorResult, rhs: VectorResult) -> VectorResult {
        var sum = lhs
        sum.passed += rhs.passed
        sum.failed += rhs.failed
        sum.skipped += rhs.skipped
        sum.failures += rhs.failures
        return sum
    }
}

/// A vector entry that did not verify.
struct VectorMismatch: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Throws unless `actual == expected`, naming the field.
func expect<T: Equatable>(_ actual: T, _ expected: T, _ field: String) throws {
    guard actual == expected else { throw VectorMismatch("\(field) differs") }
}

func expect(_ condition: Bool, _ what: String) throws {
    guard condition else { throw VectorMismatch(what) }
}

/// Which entries of a file to run.
public enum SuiteFilter: Sendable, Hashable {
    case all
    /// Only entries of this suite (entries without a suite are left out).
    case only(CipherSuite)
}

/// One kind of vector file: how to decode an entry and how to check it.
protocol VectorFile {
    associatedtype Entry: Decodable
    /// The entry's cipher suite, or nil for suite-independent files.
    static func suite(of entry: Entry) -> CipherSuite?
    static func check(_ entry: Entry) throws
}

extension VectorFile {
    static func run(_ data: Data, filter: SuiteFilter) -> VectorResult {
        var result = VectorResult()
        let entries: [Entry]
        do {
            entries = try JSONDecoder().decode([Entry].self, from: data)
        } catch {
            result.failed = 1
            result.failures = ["file does not decode as this vector format: \(error)"]
            return result
        }
        for (index, entry) in entries.enumerated() {
            let suite = suite(of: entry)
            if case .only(let wanted) = filter, suite != wanted { continue }
            if let suite, !suite.isSupported {
                result.skipped += 1
                continue
            }
            do {
                try check(entry)
                result.passed += 1
            } catch {
                result.failed += 1
                result.failures.append("entry \(index)\(suite.map { " (suite \($0.rawValue))" } ?? ""): \(error)")
            }
        }
        return result
    }
}

/// Runs the official MLS test vectors (mlswg/mls-implementations, format in
/// test-vectors.md) against this implementation.
public enum VectorRunner {
    /// Vector files this implementation checks, by name (path under the
    /// directory, without `.json`). Files not listed are counted as skipped.
    static let runners: [String: @Sendable (Data, SuiteFilter) -> VectorResult] = [
        "tree-math": TreeMathVectors.run,
        "deserialization": DeserializationVectors.run,
        "crypto-basics": CryptoBasicsVectors.run,
        "secret-tree": SecretTreeVectors.run,
        "message-protection": MessageProtectionVectors.run,
        "key-schedule": KeyScheduleVectors.run,
        "psk_secret": PSKSecretVectors.run,
        "transcript-hashes": TranscriptHashVectors.run,
        "messages": MessagesVectors.run,
        "tree-validation": TreeValidationVectors.run,
        "tree-operations": TreeOperationsVectors.run,
        "treekem": TreeKEMVectors.run,
        "welcome": WelcomeVectors.run,
        "passive-client-welcome": PassiveClientVectors.run,
        "passive-client-handling-commit": PassiveClientVectors.run,
        "passive-client-random": PassiveClientVectors.run,
        "interop-passive/application": PassiveClientVectors.run,
        "interop-passive/branch": PassiveClientVectors.run,
        "interop-passive/commit": PassiveClientVectors.run,
        "interop-passive/external_join": PassiveClientVectors.run,
        "interop-passive/external_proposals": PassiveClientVectors.run,
        "interop-passive/reinit": PassiveClientVectors.run,
        "interop-passive/welcome_join": PassiveClientVectors.run,
    ]

    /// The names of the files this implementation runs.
    public static var implementedFiles: [String] { runners.keys.sorted() }

    /// Every `*.json` file under `directory`, as names relative to it without
    /// the extension, sorted.
    public static func vectorFiles(in directory: URL) throws -> [String] {
        let root = directory.standardizedFileURL.path
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw VectorMismatch("cannot read directory \(root)")
        }
        var names: [String] = []
        while let path = enumerator.nextObject() as? String {
            if path.hasSuffix(".json") { names.append(String(path.dropLast(".json".count))) }
        }
        return names.sorted()
    }

    /// Runs one file. A file this implementation does not yet check counts
    /// each of its entries as skipped.
    public static func run(file name: String, in directory: URL, filter: SuiteFilter = .all) throws -> VectorResult {
        let data = try Data(contentsOf: directory.appendingPathComponent(name + ".json"))
        if let runner = runners[name] { return runner(data, filter) }
        return SkippedVectors.run(data, filter: filter)
    }
}

/// A file this implementation does not run yet: every entry is skipped.
enum SkippedVectors: VectorFile {
    struct Entry: Decodable {
        let cipher_suite: UInt16?
    }

    static func suite(of entry: Entry) -> CipherSuite? { entry.cipher_suite.map(CipherSuite.init(rawValue:)) }
    static func check(_ entry: Entry) throws { throw VectorMismatch("not implemented") }

    static func run(_ data: Data, filter: SuiteFilter) -> VectorResult {
        var result = VectorResult()
        guard let entries = try? JSONDecoder().decode([Entry].self, from: data) else {
            result.failed = 1
            result.failures = ["file does not decode as a vector file"]
            return result
        }
        for entry in entries {
            if case .only(let wanted) = filter, suite(of: entry) != wanted { continue }
            result.skipped += 1
        }
        return result
    }
}
