import Foundation
import MLS
import MLSVectors
import Testing

/// The official MLS interop vectors (../shared/vectors/mls), run file by file
/// and, where entries have a suite, suite by suite.
@Suite("Official MLS test vectors")
struct OfficialVectorTests {
    static let suites = CipherSuite.supported
    static let suiteFiles = [
        "crypto-basics", "secret-tree", "message-protection", "key-schedule", "psk_secret", "transcript-hashes",
    ]
    static let suiteIndependentFiles = ["tree-math", "deserialization", "messages"]

    private func run(_ file: String, _ filter: SuiteFilter) throws -> VectorResult {
        let result = try VectorRunner.run(file: file, in: VectorDirectory.url, filter: filter)
        #expect(result.failures == [], "\(file)")
        #expect(result.failed == 0)
        #expect(result.passed > 0, "no entry of \(file) ran")
        #expect(result.skipped == 0)
        return result
    }

    @Test(arguments: suiteFiles, suites)
    func suiteFile(file: String, suite: CipherSuite) throws {
        _ = try run(file, .only(suite))
    }

    @Test(arguments: suiteIndependentFiles)
    func suiteIndependentFile(file: String) throws {
        _ = try run(file, .all)
    }

    /// The foundation issue's count: 414 entries over suites 1, 2, 3, 5, 7.
    @Test func foundationFilesPassEveryRunnableEntry() throws {
        var total = VectorResult()
        for file in Self.suiteFiles + Self.suiteIndependentFiles {
            total = total + (try VectorRunner.run(file: file, in: VectorDirectory.url))
        }
        #expect(total.failed == 0)
        #expect(total.passed == 414)
    }

    /// Suites 4 and 6 need X448/Ed448, which swift-crypto lacks: reported as
    /// skipped, never as passed.
    @Test(arguments: [CipherSuite.x448Aes256Sha512Ed448, .x448Chacha20Sha512Ed448])
    func unsupportedSuitesAreSkipped(suite: CipherSuite) throws {
        #expect(throws: MLSError(.unsupportedCipherSuite, "", "")) { try CipherSuiteProvider(suite) }
        let result = try VectorRunner.run(file: "crypto-basics", in: VectorDirectory.url, filter: .only(suite))
        #expect(result.passed == 0)
        #expect(result.skipped == 1)
    }
}
