import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct TransparencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transparency",
        abstract: "Key transparency: the log of every identity key, what this device checked, and audits.",
        discussion: """
            Every identity key your device uses comes with a proof that it is in its network's public, append-only \
            log; your approved devices check daily that your own entries are what you published. See \
            docs/transparency.md.
            """,
        subcommands: [
            TransparencyStatusCommand.self, TransparencyCheckCommand.self, TransparencyForgetWitnessesCommand.self,
            TransparencyAuditCommand.self,
        ])
}

struct TransparencyStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "The heads this device accepted, their witnesses, and the last self-check.")
    @OptionGroup var options: ProfileOptions
    @Flag(name: .long, help: "Print JSON (the record this device keeps).") var json = false

    func run() async throws {
        try await options.withClient(sync: false) { client in
            let record = try await client.transparencyRecord()
            if json { return try printJSON(record) }
            if record.heads.isEmpty { print("no tree head accepted yet (this device has used no identity key)") }
            for (network, info) in record.heads.sorted(by: { $0.key < $1.key }) {
                guard let head = try? info.signed().head else { continue }
                let witnesses = info.witnesses.map(\.witness.value).sorted()
                print(
                    "\(network): \(head.size) entries, root \(Hex.encode(head.root).prefix(16))…, at \(EventPrinter.time(Date(timeIntervalSince1970: TimeInterval(head.time))))"
                )
                print(
                    "  witnesses: \(witnesses.isEmpty ? "none" : witnesses.joined(separator: ", ")) (quorum required: \(record.quorums[network] ?? 0))"
                )
                let pinned = (record.witnesses[network] ?? [:]).keys.sorted()
                print("  witnesses this device counts: \(pinned.isEmpty ? "none pinned yet" : pinned.joined(separator: ", "))")
            }
            if let check = record.selfCheck {
                print(
                    "self-check: \(EventPrinter.time(check.checkedAt)), \(check.problem.map { "ALARM: \($0)" } ?? "your entries are as you published them")"
                )
            } else {
                print("self-check: not run yet")
            }
            for evidence in record.evidence {
                print("evidence: \(evidence.network) showed \(evidence.reason) (\(EventPrinter.time(evidence.foundAt)))")
            }
        }
    }
}

struct TransparencyForgetWitnessesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget-witnesses",
        abstract: "Forget the witnesses this device counts for a network; the next tree head it accepts pins them anew.",
        discussion: """
            A device counts the witnesses it first saw for a network, and no others, so that a server cannot add \
            witnesses of its own. When the network's administrator has replaced its witnesses (your device then \
            refuses its heads: "0 of the N witness cosignature(s) required"), check with them that this is so, then \
            run this: the next head is trusted on first use, as the network's key was.
            """)
    @OptionGroup var options: ProfileOptions
    @Argument(help: "The network, e.g. acme.example.") var network: String

    func run() async throws {
        guard let domain = NetworkDomain(network) else { throw ValidationError("not a network domain: \(network)") }
        try await options.withClient(sync: false) { client in
            if try await client.forgetWitnesses(of: domain) {
                print("forgot the witnesses pinned for \(domain); the next tree head of \(domain) pins them anew")
            } else {
                print("no witnesses were pinned for \(domain)")
            }
        }
    }
}

struct TransparencyCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Check now that your own entries in the log are what your devices published.")
    @OptionGroup var options: ProfileOptions

    func run() async throws {
        try await options.withClient(sync: false) { client in
            let events = try await client.checkOwnTransparency()
            guard events.isEmpty else {
                for case .transparencyAlarm(let problem) in events { print("ALARM: \(problem)") }
                throw ExitCode(3)
            }
            print("your entries in the key-transparency log are as your devices published them")
        }
    }
}

struct TransparencyAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Download a network's whole log and check it against every head seen before.",
        discussion: """
            Needs no account. The heads seen are kept in the state file, so that a later run catches a log that \
            was truncated or altered since. Exits 0 when all is consistent, 3 when something is wrong.
            """)
    @Option(name: .long, help: "The network's server URL.") var server: String
    @Option(name: .long, help: "Where the heads seen are kept (default: ~/.conclave-audit.json).") var state: String?

    func run() async throws {
        let path =
            state
            ?? ((ProcessInfo.processInfo.environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path)
                + "/.conclave-audit.json")
        var saved = TransparencyAuditState()
        if let data = FileManager.default.contents(atPath: path) {
            guard let decoded = try? JSONDecoder().decode(TransparencyAuditState.self, from: data) else {
                throw ValidationError("\(path) is not an audit state file")
            }
            saved = decoded
        }
        let report = try await TransparencyAuditor.audit(server: server, state: &saved)
        try JSONEncoder().encode(saved).write(to: URL(fileURLWithPath: path), options: .atomic)
        print(
            "\(report.network): \(report.entries) entries of \(report.users) users, root \(Hex.encode(report.head.root).prefix(16))…, \(report.witnesses) witness cosignature(s)"
        )
        print("checked the newest head and \(report.headsChecked) head(s) seen before")
        guard report.problems.isEmpty else {
            for problem in report.problems { print("PROBLEM: \(problem)") }
            throw ExitCode(3)
        }
        print("the log is consistent with every head seen")
    }
}
