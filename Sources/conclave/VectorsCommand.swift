import ArgumentParser
import Foundation
import MLS
import MLSVectors

struct VectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vectors",
        abstract: "Run the official MLS interoperability test vectors.",
        discussion: """
            Prints one line per vector file, named by its path under DIR without \
            ".json": "NAME: P passed, F failed, S skipped", then the totals. \
            Entries of cipher suites that swift-crypto cannot run (4 and 6: X448/Ed448) \
            and files this implementation does not check yet count as skipped. \
            Exits non-zero if any entry failed.
            """
    )

    @Option(name: .long, help: "Directory holding the vector files.")
    var dir: String = "../shared/vectors/mls"

    @Option(name: .long, help: "Run only entries of this cipher suite (e.g. 1).")
    var suite: UInt16?

    @Flag(name: .long, help: "Print why each failed entry failed.")
    var verbose = false

    func run() throws {
        let directory = URL(fileURLWithPath: dir, isDirectory: true)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("no vector directory at \(dir) (use --dir)")
        }
        let files = try VectorRunner.vectorFiles(in: directory)
        guard !files.isEmpty else { throw ValidationError("no .json vector files under \(dir)") }

        let filter: SuiteFilter = suite.map { .only(CipherSuite(rawValue: $0)) } ?? .all
        var total = VectorResult()
        for name in files {
            let result: VectorResult
            do {
                result = try VectorRunner.run(file: name, in: directory, filter: filter)
            } catch {
                var unreadable = VectorResult()
                unreadable.failed = 1
                unreadable.failures = ["cannot read: \(error.localizedDescription)"]
                result = unreadable
            }
            print("\(name): \(result.passed) passed, \(result.failed) failed, \(result.skipped) skipped")
            if verbose {
                for failure in result.failures { print("  \(failure)") }
            }
            total = total + result
        }
        print("\(total.passed) passed, \(total.failed) failed, \(total.skipped) skipped")
        if total.failed > 0 { throw ExitCode.failure }
    }
}
