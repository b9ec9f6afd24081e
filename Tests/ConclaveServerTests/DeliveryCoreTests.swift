import ConclaveProtocol
import ConclaveStorage
import Foundation
import MLS
import MLSCodec
import Testing

@testable import ConclaveServer

/// The Delivery Service's sans-I/O core, with no database or socket: each
/// numbered rule of docs/server.md gets a decision, accept or the rule's
/// refusal, from values built with the MLS library.
@Suite struct DeliveryCoreTests {
    static let acme = NetworkSigningKey.generate(domain: NetworkDomain("acme.example")!)  // literals of the test
    static let now = ValidationTime.at(UInt64(Date().timeIntervalSince1970))

    /// A device of acme (or of `network`), certified by its network's key.
    struct Device {
        let address: UserAddress
        let id = DeviceID.random()
        let provider: CipherSuiteProvider
        let signer: SignaturePrivateKey
        let certificate: VerifiedDeviceCertificate

        init(_ name: String, network: NetworkSigningKey = DeliveryCoreTests.acme) throws {
            address = UserAddress(name: UserName(name)!, domain: network.domain)  // literals of the test
            provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
            signer = try provider.generateSignatureKey(random: SystemRandom())
            certificate = try VerifiedDeviceCertificate.issue(
                user: address, device: id, signatureKey: signer.publicKey, cipherSuite: provider.suite, issuedAt: 0, by: network)
        }

        var requester: Requester { Requester(address: address, device: id, isLocal: true) }

        func keyPackage() throws -> KeyPackageBundle {
            try KeyPackageBundle.create(
                provider, credential: certificate.credential, signer: signer, lifetime: Lifetime(notBefore: 0, notAfter: .max),
                capabilities: ConversationSettings.capabilities(provider.suite), random: SystemRandom())
        }

        func newGroup(extensions: [Extension]? = nil, id: [UInt8]? = nil) throws -> Group {
            var writer = TLSWriter()
            writer.writeVector([DeliveryCoreTests.acme.publicKey.externalSender])
            let senders = Extension(type: .externalSenders, data: writer.bytes)
            return try Group(
                creating: id ?? ConversationID.hosted(by: DeliveryCoreTests.acme.domain).bytes, creator: try keyPackage(),
                extensions: extensions ?? [senders],
                random: SystemRandom())
        }
    }

    static func creation(_ group: Group, kind: ConversationKind = .room, name: String? = "room") throws -> CreateConversation {
        CreateConversation(kind: kind, name: name, peer: nil, groupInfo: Base64Bytes(try group.groupInfo(includeTree: true).tlsSerialized))
    }

    /// The conversation as the Delivery Service holds it for `group`, with `members` recorded.
    static func hosted(_ group: Group, members: [Device], pending: [[UInt8]] = []) throws -> HostedConversation {
        let view = try PublicGroup(groupInfo: try group.groupInfo(includeTree: true), now: now)
        let record = ConversationRecord(
            id: try #require(ConversationID(bytes: group.groupID)), kind: .room, name: "room", directKey: nil,
            createdBy: members[0].address.name,
            createdAt: Date(), epoch: group.epoch, groupInfo: [], ratchetTree: [])
        return HostedConversation(
            record: record, group: view, pendingProposalRefs: pending, members: members.map(\.address), localDevices: members.map(\.id),
            remoteDevices: [])
    }

    /// A commit request for a commit built (and held pending) on `group`.
    static func request(_ output: CommitOutput, on group: Group, welcome: Bool = true) throws -> CommitRequest {
        var next = group
        try next.mergePendingCommit()
        return CommitRequest(
            commit: Base64Bytes(output.commit.tlsSerialized),
            welcome: welcome ? output.welcome.map { Base64Bytes(MLSMessage(body: .welcome($0)).tlsSerialized) } : nil,
            groupInfo: Base64Bytes(try next.groupInfo(includeTree: false).tlsSerialized))
    }

    static func facts(_ devices: [Device], policies: [UserName: SecurityGroupPolicy]? = nil) -> AdmissionFacts {
        AdmissionFacts(
            networkKeys: [acme.domain: acme.publicKey],
            devices: Dictionary(
                uniqueKeysWithValues: devices.map {
                    ($0.id, LiveDevice(signatureKey: $0.signer.publicKey.bytes, user: $0.address.name, suspended: false))
                }),
            policies: policies ?? Dictionary(uniqueKeysWithValues: devices.map { ($0.address.name, SecurityGroupPolicy(name: .default)) }),
            federation: FederationFacts(mode: .listed, peers: []))
    }

    /// The code of the refusal `body` throws; nil when it accepts.
    static func refusal<T>(_ body: () throws -> T) -> ErrorCode? {
        do {
            _ = try body()
            return nil
        } catch let error as APIError {
            return error.code
        } catch {
            Issue.record("not an API error: \(error)")
            return nil
        }
    }

    // MARK: Creation

    @Test("D1–D4, D18, D22: a new conversation")
    func creation() throws {
        let alice = try Device("alice")
        let bob = try Device("bob")
        let group = try alice.newGroup()
        let key = Self.acme.publicKey
        let accepted = try DeliveryCore.checkNewConversation(try Self.creation(group), by: alice.requester, networkKey: key, now: Self.now)
        #expect(accepted.id.bytes == group.groupID)
        #expect(accepted.name == "room")
        // D1: not at epoch 0.
        var advanced = try alice.newGroup()
        _ = try advanced.commit(forcePath: true, now: Self.now, random: SystemRandom())
        try advanced.mergePendingCommit()
        let notNew = try Self.creation(advanced)
        #expect(
            Self.refusal { try DeliveryCore.checkNewConversation(notNew, by: alice.requester, networkKey: key, now: Self.now) }
                == .invalidMLSMessage)
        // D3: the creator's leaf is not the requesting device, or is certified by another key.
        let request = try Self.creation(group)
        #expect(
            Self.refusal { try DeliveryCore.checkNewConversation(request, by: bob.requester, networkKey: key, now: Self.now) } == .forbidden
        )
        let impostor = try Device("alice", network: NetworkSigningKey.generate(domain: Self.acme.domain))
        let impostors = try Self.creation(try impostor.newGroup())
        #expect(
            Self.refusal { try DeliveryCore.checkNewConversation(impostors, by: impostor.requester, networkKey: key, now: Self.now) }
                == .forbidden)
        // D4: no external sender.
        let unmanaged = try Self.creation(try alice.newGroup(extensions: []))
        #expect(
            Self.refusal { try DeliveryCore.checkNewConversation(unmanaged, by: alice.requester, networkKey: key, now: Self.now) }
                == .missingExternalSender)
        // D22: a group id without this network's tag (random, or another network's).
        for id in [ConversationID.random().bytes, ConversationID.hosted(by: try #require(NetworkDomain("globex.example"))).bytes] {
            let untagged = try Self.creation(try alice.newGroup(id: id))
            #expect(
                Self.refusal { try DeliveryCore.checkNewConversation(untagged, by: alice.requester, networkKey: key, now: Self.now) }
                    == .invalidMLSMessage)
        }
        // D18: malformed settings. A room without a printable name.
        var writer = TLSWriter()
        writer.writeVector([key.externalSender])
        let senders = Extension(type: .externalSenders, data: writer.bytes)
        let malformed = try Self.creation(
            try alice.newGroup(extensions: [senders, Extension(type: ConversationSettings.extensionType, data: [1])]))
        #expect(
            Self.refusal { try DeliveryCore.checkNewConversation(malformed, by: alice.requester, networkKey: key, now: Self.now) }
                == .invalidSettings)
        let unnamed = try Self.creation(group, name: "bad\u{7}")
        #expect(
            Self.refusal { try DeliveryCore.checkNewConversation(unnamed, by: alice.requester, networkKey: key, now: Self.now) }
                == .badRequest)
    }

    // MARK: Commits

    @Test("D6–D14: a commit is staged, or refused by the rule it breaks")
    func staging() throws {
        let alice = try Device("alice")
        let bob = try Device("bob")
        let mallory = try Device("mallory")
        var group = try alice.newGroup()
        let conversation = try Self.hosted(group, members: [alice])
        let bobPackage = try bob.keyPackage()
        let add = try group.commit(adding: [bobPackage.keyPackage], now: Self.now, random: SystemRandom())
        let request = try Self.request(add, on: group)
        let staged = try DeliveryCore.stageCommit(request, to: conversation, by: alice.requester, now: Self.now)
        #expect(staged.group.epoch == 1)
        #expect(staged.newcomers == [bob.address])
        #expect(staged.changedLeaves.map(\.claim.claimedDevice).sorted() == [alice.id, bob.id].sorted())
        // D6: an outsider learns nothing. D9: a member may not commit as another's leaf.
        #expect(Self.refusal { try DeliveryCore.stageCommit(request, to: conversation, by: mallory.requester, now: Self.now) } == .notFound)
        var withMallory = conversation
        withMallory.members.append(mallory.address)
        #expect(Self.refusal { try DeliveryCore.stageCommit(request, to: withMallory, by: mallory.requester, now: Self.now) } == .forbidden)
        // D14: an Add without its Welcome. D13: a GroupInfo of the old epoch. D7: not a commit.
        let withoutWelcome = try Self.request(add, on: group, welcome: false)
        #expect(
            Self.refusal { try DeliveryCore.stageCommit(withoutWelcome, to: conversation, by: alice.requester, now: Self.now) }
                == .invalidMLSMessage)
        var stale = request
        stale.groupInfo = Base64Bytes(try group.groupInfo(includeTree: false).tlsSerialized)
        #expect(
            Self.refusal { try DeliveryCore.stageCommit(stale, to: conversation, by: alice.requester, now: Self.now) } == .invalidMLSMessage
        )
        var notACommit = request
        notACommit.commit = Base64Bytes(try group.encrypt([1], random: SystemRandom()).tlsSerialized)
        #expect(
            Self.refusal { try DeliveryCore.stageCommit(notACommit, to: conversation, by: alice.requester, now: Self.now) }
                == .invalidMLSMessage)
        // D10: a flipped signature byte.
        guard case .publicMessage(var tampered) = add.commit.body else { throw TestFailure("not a PublicMessage") }
        tampered.auth.signature[0] ^= 1
        var forged = request
        forged.commit = Base64Bytes(MLSMessage(body: .publicMessage(tampered)).tlsSerialized)
        #expect(
            Self.refusal { try DeliveryCore.stageCommit(forged, to: conversation, by: alice.requester, now: Self.now) }
                == .invalidMLSMessage)
        // D8: the conversation moved on.
        var later = conversation
        later.record.epoch = 5
        let error = try #require(throws: APIError.self) {
            try DeliveryCore.stageCommit(request, to: later, by: alice.requester, now: Self.now)
        }
        #expect(error.code == .wrongEpoch)
        #expect(error.currentEpoch == 5)
        // D11: a pending server proposal left out.
        var pending = conversation
        pending.pendingProposalRefs = [[1, 2, 3]]
        #expect(
            Self.refusal { try DeliveryCore.stageCommit(request, to: pending, by: alice.requester, now: Self.now) } == .pendingProposals)
        try group.mergePendingCommit()
    }

    @Test("D12, D21, P1: admission with the facts the shell loaded")
    func admission() throws {
        let alice = try Device("alice")
        let bob = try Device("bob")
        var group = try alice.newGroup()
        let conversation = try Self.hosted(group, members: [alice])
        let add = try group.commit(adding: [try bob.keyPackage().keyPackage], now: Self.now, random: SystemRandom())
        let staged = try DeliveryCore.stageCommit(try Self.request(add, on: group), to: conversation, by: alice.requester, now: Self.now)
        let write = try DeliveryCore.admit(staged, facts: Self.facts([alice, bob]), domain: Self.acme.domain, now: Date())
        #expect(write.toEpoch == 1)
        #expect(Set(write.devices.map(\.device)) == [alice.id, bob.id])
        #expect(write.addedUsers == [bob.address.name])
        #expect(write.deliveries.map(\.kind) == [.handshake, .welcome])
        #expect(write.deliveries[1].recipients == [bob.id])
        #expect(write.deliveries[0].recipients.isEmpty)  // the committer does not get its own commit
        // D12: bob's device is deleted, or bob is suspended.
        #expect(
            Self.refusal { try DeliveryCore.admit(staged, facts: Self.facts([alice]), domain: Self.acme.domain, now: Date()) }
                == .inactiveDevice)
        var suspended = Self.facts([alice, bob])
        suspended.devices[bob.id] = LiveDevice(signatureKey: bob.signer.publicKey.bytes, user: bob.address.name, suspended: true)
        #expect(Self.refusal { try DeliveryCore.admit(staged, facts: suspended, domain: Self.acme.domain, now: Date()) } == .inactiveDevice)
        // D12: a network key that does not sign these certificates.
        var otherKey = Self.facts([alice, bob])
        otherKey.networkKeys[Self.acme.domain] = NetworkSigningKey.generate(domain: Self.acme.domain).publicKey
        #expect(
            Self.refusal { try DeliveryCore.admit(staged, facts: otherKey, domain: Self.acme.domain, now: Date()) } == .invalidCredential)
        // D21: a 1:1 of alice and carol does not take in bob.
        var direct = conversation
        direct.directUsers = [alice.address, try Device("carol").address]
        let intoDirect = try DeliveryCore.stageCommit(try Self.request(add, on: group), to: direct, by: alice.requester, now: Self.now)
        #expect(
            Self.refusal { try DeliveryCore.admit(intoDirect, facts: Self.facts([alice, bob]), domain: Self.acme.domain, now: Date()) }
                == .directConversation)
        // P1: bob's group may not message alice's.
        let walled = SecurityGroupPolicy(name: SecurityGroupName("walled")!, mayMessage: .only([]))
        let policies = [alice.address.name: SecurityGroupPolicy(name: .default), bob.address.name: walled]
        #expect(
            Self.refusal {
                try DeliveryCore.admit(staged, facts: Self.facts([alice, bob], policies: policies), domain: Self.acme.domain, now: Date())
            } == .policySegmentation)
    }

    // MARK: Messages

    @Test("D15, D16, D19, D25: an application message")
    func messages() throws {
        let alice = try Device("alice")
        let mallory = try Device("mallory")
        var group = try alice.newGroup()
        let id = try #require(ConversationID(bytes: group.groupID))
        let message = SendMessage(messageId: "m-1", message: Base64Bytes(try group.encrypt([1, 2], random: SystemRandom()).tlsSerialized))
        #expect(
            try DeliveryCore.checkMessage(
                message, to: id, localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 1 << 20) == (0, 0))
        // D25: the authenticated data names the generation (8 bytes), or is empty for generation 0.
        let later = SendMessage(
            messageId: "m-2",
            message: Base64Bytes(
                try group.encrypt([3], authenticatedData: ConversationGeneration.authenticatedData(2), random: SystemRandom())
                    .tlsSerialized))
        #expect(
            try DeliveryCore.checkMessage(
                later, to: id, localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 1 << 20) == (0, 2))
        let odd = SendMessage(
            messageId: "m-3",
            message: Base64Bytes(try group.encrypt([4], authenticatedData: [1, 2, 3], random: SystemRandom()).tlsSerialized))
        #expect(
            Self.refusal {
                try DeliveryCore.checkMessage(
                    odd, to: id, localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 1 << 20)
            } == .invalidMLSMessage)
        #expect(
            Self.refusal {
                try DeliveryCore.checkMessage(
                    message, to: id, localDevices: [alice.id], remoteDevices: [], by: mallory.requester, maxBytes: 1 << 20)
            } == .notFound)
        #expect(
            Self.refusal {
                try DeliveryCore.checkMessage(
                    message, to: .random(), localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 1 << 20)
            } == .invalidMLSMessage)
        var badID = message
        badID.messageId = "no spaces"
        #expect(
            Self.refusal {
                try DeliveryCore.checkMessage(
                    badID, to: id, localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 1 << 20)
            }
                == .badRequest)
        // D19: over the network's size limit.
        #expect(
            Self.refusal {
                try DeliveryCore.checkMessage(
                    message, to: id, localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 16)
            }
                == .tooLarge)
        var cleartext = message
        cleartext.message = Base64Bytes(try group.proposeUpdate(random: SystemRandom()).tlsSerialized)
        #expect(
            Self.refusal {
                try DeliveryCore.checkMessage(
                    cleartext, to: id, localDevices: [alice.id], remoteDevices: [], by: alice.requester, maxBytes: 1 << 20)
            } == .invalidMLSMessage)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
