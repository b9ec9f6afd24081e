@_spi(Benchmarks) import MLS
import MLSCodec

/// Group operations at scale: for each size, a group in which every member
/// has committed once (the tree is full), then timed commits that add one
/// member, remove one, or only update the committer's path, each created by
/// one member and processed by another; the time to join from a Welcome; and
/// message sizes.
/// The time lifetimes are checked against (every benchmark key package is always valid).
let now = ValidationTime.at(1_800_000_000)

func groupsBenchmark(sizes: [Int], iterations: Int, suite: CipherSuite) throws {
    let provider = try CipherSuiteProvider(suite)
    let random = SystemRandom()
    let clock = ContinuousClock()
    let lifetime = Lifetime(notBefore: 0, notAfter: UInt64.max)

    func bundle(_ name: String) throws -> KeyPackageBundle {
        try KeyPackageBundle.create(
            provider, credential: .basic(identity: Array(name.utf8)), signer: try provider.generateSignatureKey(random: random),
            lifetime: lifetime, random: random)
    }

    func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    /// The median of `iterations` runs of `body`, in milliseconds.
    func median(_ body: () throws -> Void) rethrows -> Double {
        var samples: [Double] = []
        for _ in 0..<iterations { samples.append(milliseconds(try clock.measure(body))) }
        return samples.sorted()[samples.count / 2]
    }

    let sample = try bundle("sample").keyPackage
    let packageSize = MLSMessage(body: .keyPackage(sample)).tlsSerialized.count
    print("suite \(suite) (0x\(String(suite.rawValue, radix: 16))): a KeyPackage is \(packageSize) bytes\n")
    print("| members | operation | create (ms) | process (ms) | message (bytes) | Welcome (bytes) |")
    print("|---:|---|---:|---:|---:|---:|")
    for size in sizes where size >= 3 {
        let setupStart = clock.now
        // Creator at leaf 0, members 1 ... size-2 committed once, the processor last.
        var creator = try Group(creating: random.bytes(count: 16), creator: try bundle("creator"), random: random)
        let members = try (1..<(size - 1)).map { try bundle("member-\($0)") }
        _ = try creator.commit(adding: members.map(\.keyPackage), now: now, random: random)
        try creator.mergePendingCommit()
        try creator.simulateCommits(
            by: members.enumerated().map { offset, member in
                Group.SimulatedMember(leaf: LeafIndex(UInt32(offset + 1)), signer: member.signer, encryptionKey: member.encryptionKey)
            }, random: random)
        let processorBundle = try bundle("processor")
        let joinOutput = try creator.commit(adding: [processorBundle.keyPackage], forcePath: true, now: now, random: random)
        try creator.mergePendingCommit()
        guard let joinWelcome = joinOutput.welcome else { throw MLSError(.invalidUse, "benchmark", "no Welcome") }
        let processor = try Group(welcome: joinWelcome, keyPackage: processorBundle, now: now)
        precondition(processor.epochAuthenticator == creator.epochAuthenticator, "benchmark group out of step")
        let setup = milliseconds(clock.now - setupStart)

        let join = median { _ = try? Group(welcome: joinWelcome, keyPackage: processorBundle, now: now) }
        print("| \(size) | join from Welcome (tree inside) | – | \(format(join, decimals: 2)) | – | \(joinWelcomeSize(joinWelcome)) |")

        let newcomers = try (0..<iterations).map { try bundle("newcomer-\($0)") }
        var index = 0
        try row(size, "add one member", creator: creator, processor: processor, median: median) { group in
            defer { index += 1 }
            return try group.commit(adding: [newcomers[index % newcomers.count].keyPackage], now: now, random: random)
        }
        var outOfBand = creator
        outOfBand.configuration.ratchetTreeExtension = false
        try row(size, "add one member (tree out of band)", creator: outOfBand, processor: processor, median: median) { group in
            defer { index += 1 }
            return try group.commit(adding: [newcomers[index % newcomers.count].keyPackage], now: now, random: random)
        }
        try row(size, "remove one member", creator: creator, processor: processor, median: median) { group in
            try group.commit(removing: [LeafIndex(1)], now: now, random: random)
        }
        try row(size, "empty commit with path", creator: creator, processor: processor, median: median) { group in
            try group.commit(forcePath: true, now: now, random: random)
        }
        print("| \(size) | (setup: \(format(setup / 1000, decimals: 1)) s) | | | | |")
    }
}

func joinWelcomeSize(_ welcome: Welcome) -> Int { MLSMessage(body: .welcome(welcome)).tlsSerialized.count }

/// Times creating a commit (on a fresh copy of the creator each time) and
/// processing it (on a fresh copy of the processor).
func row(
    _ size: Int, _ name: String, creator: Group, processor: Group, median: (() throws -> Void) throws -> Double,
    make: @escaping (inout Group) throws -> CommitOutput
) throws {
    var sample: CommitOutput?
    let create = try median {
        var group = creator
        sample = try make(&group)
    }
    guard let output = sample else { return }
    let process = try median {
        var group = processor
        _ = try group.process(output.commit, now: now)
    }
    let welcome = output.welcome.map { "\(joinWelcomeSize($0))" } ?? "–"
    print(
        "| \(size) | \(name) | \(format(create, decimals: 2)) | \(format(process, decimals: 2)) | \(output.commit.tlsSerialized.count) | \(welcome) |"
    )
}
