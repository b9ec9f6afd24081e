import MLS
import MLSCodec
import Testing

/// Seeded random group histories: adds, removes, self-updates, external
/// joins and application messages with up to `maxMembers` members. After
/// every epoch all members agree on the epoch authenticator, and every removed
/// member fails to read anything of the later epochs with its own last state.
@Suite("Random multi-member scenarios")
struct RandomScenarioTests {
    struct Scenario: Sendable, CustomTestStringConvertible {
        let seed: UInt64
        let suite: CipherSuite
        let maxMembers: Int
        let steps: Int
        let publicHandshakes: Bool
        var testDescription: String { "seed \(seed), suite \(suite.rawValue), ≤\(maxMembers) members, \(steps) steps" }
    }

    static let scenarios = [
        Scenario(seed: 1, suite: .x25519Aes128Sha256Ed25519, maxMembers: 50, steps: 110, publicHandshakes: true),
        Scenario(seed: 2, suite: .x25519Aes128Sha256Ed25519, maxMembers: 50, steps: 110, publicHandshakes: false),
        Scenario(seed: 3, suite: .x25519Chacha20Sha256Ed25519, maxMembers: 20, steps: 40, publicHandshakes: true),
        Scenario(seed: 4, suite: .p256Aes128Sha256P256, maxMembers: 12, steps: 25, publicHandshakes: false),
        Scenario(seed: 5, suite: .xwingChacha20Sha256Ed25519, maxMembers: 20, steps: 40, publicHandshakes: true),
    ]

    struct World {
        let scenario: Scenario
        let random: SeededRandom
        var groups: [Group] = []
        var former: [Group] = []
        var nextClient: UInt64 = 0
        var epochs = 0
        var peak = 1
        /// How often each kind of step ran: add, remove, external join, update, message.
        var counts = [0, 0, 0, 0, 0]

        init(_ scenario: Scenario) {
            self.scenario = scenario
            random = SeededRandom(seed: scenario.seed)
        }

        var configuration: GroupConfiguration { GroupConfiguration(handshakeAsPublicMessage: scenario.publicHandshakes) }

        mutating func newClient() throws -> Client {
            nextClient += 1
            return try Client("member-\(nextClient)", suite: scenario.suite, seed: scenario.seed &* 1000 &+ nextClient)
        }

        func pick(_ count: Int) -> Int { Int(random.next() % UInt64(count)) }

        /// Sends a commit from `committer` to everyone, merges it, and checks agreement.
        mutating func apply(_ output: CommitOutput, from committer: Int, joining: [KeyPackageBundle]) throws {
            var remaining: [Group] = []
            for index in groups.indices {
                if index == committer {
                    try groups[index].mergePendingCommit()
                    remaining.append(groups[index])
                    continue
                }
                guard case .commit(let summary) = try groups[index].process(output.commit, now: testNow) else {
                    throw MLSError(.invalidUse, "test", "not a commit")
                }
                if summary.removedSelf { former.append(groups[index]) } else { remaining.append(groups[index]) }
            }
            groups = remaining
            if let welcome = output.welcome {
                for bundle in joining {
                    groups.append(try Group(welcome: welcome, keyPackage: bundle, now: testNow, configuration: configuration))
                }
            }
            try checkAgreement()
        }

        mutating func checkAgreement() throws {
            epochs += 1
            peak = max(peak, groups.count)
            let reference = groups[0]
            for group in groups {
                #expect(group.epoch == reference.epoch)
                #expect(group.epochAuthenticator == reference.epochAuthenticator)
                #expect(group.members.count == groups.count)
            }
        }

        mutating func step() throws {
            let committer = pick(groups.count)
            switch random.next() % 6 {
            case 0 where groups.count < scenario.maxMembers, 1 where groups.count < scenario.maxMembers:
                let count = min(1 + pick(3), scenario.maxMembers - groups.count)
                let bundles = try (0..<count).map { _ in try newClient().keyPackage() }
                let output = try groups[committer].commit(adding: bundles.map(\.keyPackage), now: testNow, random: random)
                try apply(output, from: committer, joining: bundles)
                counts[0] += 1
            case 2 where groups.count > 2:
                let own = groups[committer].ownLeaf
                let others = groups.map(\.ownLeaf).filter { $0 != own }
                let victims = Array(Set((0..<min(2, others.count - 1)).map { _ in others[pick(others.count)] }))
                let output = try groups[committer].commit(removing: victims, now: testNow, random: random)
                try apply(output, from: committer, joining: [])
                counts[1] += 1
            case 3 where groups.count < scenario.maxMembers:
                let client = try newClient()
                let info = try groups[pick(groups.count)].groupInfo()
                let (joined, commit) = try Group.joinExternally(
                    groupInfo: info, credential: client.credential, signer: client.signer, configuration: configuration, now: testNow,
                    random: random)
                for index in groups.indices { _ = try groups[index].process(commit, now: testNow) }
                groups.append(joined)
                try checkAgreement()
                counts[2] += 1
            case 4:
                let output = try groups[committer].commit(forcePath: true, now: testNow, random: random)
                try apply(output, from: committer, joining: [])
                counts[3] += 1
            default:
                try sendApplicationMessage(from: committer)
                counts[4] += 1
            }
        }

        mutating func sendApplicationMessage(from sender: Int) throws {
            let text = Array("message \(random.next())".utf8)
            let message = try groups[sender].encrypt(text, random: random)
            for index in groups.indices where index != sender {
                guard case .application(let received) = try groups[index].process(message, now: testNow) else {
                    throw MLSError(.invalidUse, "test", "not application data")
                }
                #expect(received.data == text)
            }
            for index in former.indices {
                var state = former[index]
                #expect(throws: MLSError.self) { try state.process(message, now: testNow) }
            }
        }
    }

    @Test(arguments: scenarios)
    func randomHistory(_ scenario: Scenario) throws {
        var world = World(scenario)
        let creator = try world.newClient()
        world.groups = [
            try Group(
                creating: world.random.bytes(count: 16), creator: try creator.keyPackage(), configuration: world.configuration,
                random: world.random)
        ]
        for _ in 0..<scenario.steps { try world.step() }
        try world.sendApplicationMessage(from: 0)
        #expect(world.epochs > scenario.steps / 3)
        #expect(world.counts.allSatisfy { $0 > 0 }, "every kind of step ran: \(world.counts)")
        #expect(!world.former.isEmpty)
        if scenario.maxMembers == 50 { #expect(world.peak >= 40, "peak \(world.peak) members") }
    }
}
