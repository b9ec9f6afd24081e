import MLS
import MLSCodec

// Prints a table of MLS framing and key-derivation throughput on one core.
// Each row runs its operation for about `--seconds` (default 1) of wall time.

struct Row {
    let name: String
    let operations: Int
    let seconds: Double
    var perSecond: Double { Double(operations) / seconds }
    var microseconds: Double { seconds / Double(operations) * 1_000_000 }
}

func measure(_ name: String, budget: Double, batch: Int, _ body: () throws -> Void) rethrows -> Row {
    let clock = ContinuousClock()
    var operations = 0
    let start = clock.now
    var elapsed = 0.0
    repeat {
        for _ in 0..<batch { try body() }
        operations += batch
        let duration = clock.now - start
        elapsed = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    } while elapsed < budget
    return Row(name: name, operations: operations, seconds: elapsed)
}

struct Fixture {
    let provider: CipherSuiteProvider
    let context: GroupContext
    let signer: SignaturePrivateKey
    let secrets: EpochSecrets
    let sender = LeafIndex(1)
    let random = SystemRandom()

    init(suite: CipherSuite) throws {
        provider = try CipherSuiteProvider(suite)
        signer = try provider.generateSignatureKey(random: random)
        context = GroupContext(
            cipherSuite: suite, groupID: random.bytes(count: 16), epoch: 1,
            treeHash: random.bytes(count: provider.hashLength), confirmedTranscriptHash: random.bytes(count: provider.hashLength))
        secrets = KeySchedule.epochSecrets(
            provider, initSecret: InitSecret(random.bytes(count: provider.hashLength)),
            commitSecret: CommitSecret(random.bytes(count: provider.hashLength)), pskSecret: nil, groupContext: context)
    }

    func tree(leaves: UInt32 = 2) -> SecretTree {
        SecretTree(provider, encryptionSecret: secrets.encryptionSecret, leafCount: leaves)
    }

    func protect(_ payload: [UInt8], tree: inout SecretTree) throws -> [UInt8] {
        let content = FramedContent(
            groupID: context.groupID, epoch: context.epoch, sender: .member(sender), authenticatedData: [], content: .application(payload))
        let signed = try AuthenticatedContent.sign(
            provider, wireFormat: .privateMessage, content: content, context: context, signer: signer)
        let message = try PrivateMessage.protect(
            provider, signed, secretTree: &tree, senderDataSecret: secrets.senderDataSecret, random: random)
        return MLSMessage(body: .privateMessage(message)).tlsSerialized
    }

    func unprotect(_ wire: [UInt8], tree: inout SecretTree) throws -> Int {
        guard case .privateMessage(let message) = try MLSMessage(tlsSerialized: wire).body else { return 0 }
        let key = signer.publicKey
        let content = try message.unprotect(
            provider, context: context, secretTree: &tree, senderDataSecret: secrets.senderDataSecret, signerKey: { _ in key })
        guard case .application(let data) = content.content.content else { return 0 }
        return data.count
    }
}

/// Framing throughput: protect / unprotect application messages, and the primitives under them.
func framingBenchmark(suites: [CipherSuite], budget: Double) throws {
    var rows: [(CipherSuite, Row)] = []
    for suite in suites {
        let fixture = try Fixture(suite: suite)
        for size in [100, 1024] {
            let payload = [UInt8](repeating: 0x61, count: size)
            var senderTree = fixture.tree()
            rows.append(
                (
                    suite,
                    try measure("protect \(size) B", budget: budget, batch: 64) {
                        _ = try fixture.protect(payload, tree: &senderTree)
                    }
                ))

            // Unprotect needs messages in order from a fresh sender.
            var producer = fixture.tree()
            let count = max(1, Int(rows.last!.1.perSecond * budget))
            let messages = try (0..<count).map { _ in try fixture.protect(payload, tree: &producer) }
            var receiverTree = fixture.tree()
            var index = 0
            rows.append(
                (
                    suite,
                    try measure("unprotect \(size) B", budget: budget, batch: 1) {
                        if index == messages.count {
                            receiverTree = fixture.tree()
                            index = 0
                        }
                        _ = try fixture.unprotect(messages[index], tree: &receiverTree)
                        index += 1
                    }
                ))

            var pairSender = fixture.tree()
            var pairReceiver = fixture.tree()
            rows.append(
                (
                    suite,
                    try measure("protect + unprotect \(size) B", budget: budget, batch: 16) {
                        _ = try fixture.unprotect(try fixture.protect(payload, tree: &pairSender), tree: &pairReceiver)
                    }
                ))
        }

        // The primitives underneath, for reference: the floor of protect/unprotect.
        let signContent = [UInt8](repeating: 0x62, count: 1100)
        let signature = try fixture.provider.signWithLabel(fixture.signer, label: "FramedContentTBS", content: signContent)
        rows.append(
            (
                suite,
                try measure("primitive: SignWithLabel 1.1 KiB", budget: budget, batch: 16) {
                    _ = try fixture.provider.signWithLabel(fixture.signer, label: "FramedContentTBS", content: signContent)
                }
            ))
        rows.append(
            (
                suite,
                measure("primitive: VerifyWithLabel 1.1 KiB", budget: budget, batch: 16) {
                    _ = fixture.provider.verifyWithLabel(
                        fixture.signer.publicKey, label: "FramedContentTBS", content: signContent, signature: signature)
                }
            ))
        let aeadKey = [UInt8](repeating: 1, count: fixture.provider.aeadKeyLength)
        let nonce = [UInt8](repeating: 2, count: fixture.provider.aeadNonceLength)
        rows.append(
            (
                suite,
                try measure("primitive: AEAD seal 1.1 KiB", budget: budget, batch: 64) {
                    _ = try fixture.provider.seal(key: aeadKey, nonce: nonce, aad: [], plaintext: signContent)
                }
            ))
        let expandSecret = [UInt8](repeating: 3, count: fixture.provider.hashLength)
        rows.append(
            (
                suite,
                measure("primitive: ExpandWithLabel", budget: budget, batch: 256) {
                    _ = fixture.provider.expandWithLabel(secret: expandSecret, label: "key", context: [0, 0, 0, 1], length: 16)
                }
            ))

        var ratchetTree = fixture.tree()
        rows.append(
            (
                suite,
                try measure("secret tree: next ratchet key", budget: budget, batch: 256) {
                    _ = try ratchetTree.nextKey(for: LeafIndex(0), kind: .application)
                }
            ))
        var leaf: UInt32 = 0
        var wideTree = fixture.tree(leaves: 1 << 16)
        rows.append(
            (
                suite,
                try measure("secret tree: first key of a leaf (65,536 leaves)", budget: budget, batch: 64) {
                    if leaf == 1 << 16 {
                        wideTree = fixture.tree(leaves: 1 << 16)
                        leaf = 0
                    }
                    _ = try wideTree.nextKey(for: LeafIndex(leaf), kind: .application)
                    leaf += 1
                }
            ))
    }

    print("| suite | operation | ops/s | µs/op |")
    print("|---|---|---:|---:|")
    for (suite, row) in rows {
        print("| \(suite.rawValue) | \(row.name) | \(format(row.perSecond, decimals: 0)) | \(format(row.microseconds, decimals: 1)) |")
    }
}

func format(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return decimals == 0 ? String(Int(rounded)) : String(rounded)
}
