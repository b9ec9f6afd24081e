import ConclaveProtocol
import Foundation
import MLS

/// Users vouch for their own devices (docs/client.md, "Identity keys and
/// device approval"): the user's identity key, held by the user's approved
/// devices only; the approval of new devices; and the identity keys of
/// contacts, pinned on first use and verified with safety numbers.
extension ConclaveClient {
    static let transferLabel = "Conclave identity transfer v1"

    // MARK: This device

    /// While this device waits for approval: the code to type on one of the
    /// user's approved devices (`conclave device approve CODE`).
    public var approvalCode: String? {
        guard let account, account.pending == true, let seed = account.transferSeed?.bytes,
            let provider = try? self.provider, let transferKey = try? provider.hpkePublicKey(of: HPKEPrivateKey(seed)),
            let certificate = try? UnverifiedDeviceCertificate(tlsSerialized: account.certificate.bytes)
        else { return nil }
        return ApprovalCode.compute(device: account.device, signatureKey: certificate.signatureKey, transferKey: transferKey.bytes)
    }

    /// Whether this device waits for approval by another device of its user.
    public var isPending: Bool { account?.pending == true }

    /// The extensions every leaf of this device carries: its approval.
    var leafExtensions: [Extension] {
        guard let bytes = account?.approval?.bytes, let approval = try? DeviceApproval(tlsSerialized: bytes) else { return [] }
        return [approval.leafExtension]
    }

    var identityKey: UserIdentityKey? {
        guard let seed = account?.identitySeed?.bytes else { return nil }
        return try? UserIdentityKey(seed: seed)
    }

    func saveAccount(_ account: Account) async throws {
        try await store.setMeta("account", Array(try ConclaveJSON.encoder().encode(account)))
        self.account = account
    }

    /// After a new device's sign-in: the first device of a user makes the
    /// user's identity key and approves itself; any later one waits.
    func establishIdentity(_ response: LoginResponse) async throws {
        guard var account else { throw ClientError.notSignedIn }
        if response.pending == true {
            account.pending = true
            try await saveAccount(account)
            return
        }
        try await createIdentity()
    }

    /// A11: makes the user's identity key, approves this device with it and
    /// publishes the public half.
    func createIdentity() async throws {
        guard var account else { throw ClientError.notSignedIn }
        let (_, signer, _) = try requireAccount()
        let identity = UserIdentityKey.generate()
        let approval = try identity.approve(
            user: account.user, device: account.device, signatureKey: signer.publicKey,
            cipherSuite: CipherSuite(rawValue: account.cipherSuite), at: now)
        let _: [String: Bool] = try await api.put(
            "/v1/identity",
            IdentityPublication(identityKey: Base64Bytes(identity.publicKey.rawKey), approval: Base64Bytes(approval.tlsSerialized)))
        account.identitySeed = Base64Bytes(identity.seed)
        account.approval = Base64Bytes(approval.tlsSerialized)
        account.pending = nil
        account.transferSeed = nil
        try await saveAccount(account)
    }

    /// A pending device asks whether it was approved. Once it was, it
    /// opens the identity key sealed to it, checks that the key is its
    /// user's and that the approval is for this device, and joins the
    /// user's conversations. When the user has no identity key any more (no
    /// approved device is left), this device makes a new one.
    func checkApproval() async throws -> [ClientEvent] {
        guard var account, account.pending == true else { return [] }
        let found: ApproveDevice
        do {
            found = try await api.get("/v1/devices/self/approval")
        } catch let error as ClientError where error.code == .notFound {
            do {
                let _: UserIdentityInfo = try await api.get("/v1/users/\(account.user)/identity")
                return []  // still waiting
            } catch let error as ClientError where error.code == .notFound {
                try await createIdentity()
                return [.approved] + (try await joinAfterApproval())
            }
        }
        let provider = try self.provider
        let (_, signer, networkKey) = try requireAccount()
        guard let transferSeed = account.transferSeed?.bytes,
            let sealed = try? HPKECiphertext(tlsSerialized: found.sealedIdentity.bytes),
            let seed = try? provider.decryptWithLabel(
                HPKEPrivateKey(transferSeed), label: Self.transferLabel, context: Array(account.device.value.utf8), ciphertext: sealed),
            let identity = try? UserIdentityKey(seed: seed),
            let approval = try? DeviceApproval(tlsSerialized: found.approval.bytes),
            let certificate = (try? UnverifiedDeviceCertificate(tlsSerialized: account.certificate.bytes))?.verified(by: networkKey),
            certificate.signatureKey == signer.publicKey,
            approval.isValid(for: certificate, identity: identity.publicKey)
        else { throw ClientError.invalid("the approval of this device does not verify; it was not used") }
        let published: UserIdentityInfo = try await api.get("/v1/users/\(account.user)/identity")
        guard published.user == account.user else { throw ClientError.invalid("the server answered for another user") }
        try await checkTransparency(published)
        guard published.identityKey.bytes == identity.publicKey.rawKey else {
            throw ClientError.invalid("the identity key given to this device is not the one the server publishes for your account")
        }
        account.identitySeed = Base64Bytes(seed)
        account.approval = found.approval
        account.pending = nil
        account.transferSeed = nil
        try await saveAccount(account)
        return [.approved] + (try await joinAfterApproval())
    }

    private func joinAfterApproval() async throws -> [ClientEvent] {
        try await replenishKeyPackages()
        return try await joinMissingConversations(quietly: false)
    }

    /// This user's devices, as the server lists them.
    public func devices() async throws -> [OwnDevice] {
        let (account, _, _) = try requireAccount()
        let list: DeviceList = try await api.get("/v1/devices")
        return list.devices.map {
            OwnDevice(
                id: $0.deviceId, name: $0.name, pending: $0.pending == true, current: $0.deviceId == account.device, createdAt: $0.createdAt
            )
        }
    }

    /// A12: approves one of the user's pending devices by the code it
    /// shows. The code binds the device's id, signature key and transfer
    /// key, so a key the server substituted matches no code. The approval
    /// and the identity key, sealed to the device's transfer key, go to it
    /// through the server.
    @discardableResult
    public func approveDevice(code: String) async throws -> OwnDevice {
        try await lock.withLock { try await self.performApproval(code: ApprovalCode.normalise(code)) }
    }

    private func performApproval(code: String) async throws -> OwnDevice {
        let (account, _, networkKey) = try requireAccount()
        guard let identity = identityKey, account.pending != true else {
            throw ClientError.invalid("this device is not approved itself: approve the new device from an approved one")
        }
        let list: DeviceList = try await api.get("/v1/devices")
        for device in list.devices where device.pending == true {
            guard let transferKey = device.transferKey?.bytes,
                let certificate = (try? UnverifiedDeviceCertificate(tlsSerialized: device.certificate.bytes))?.verified(by: networkKey),
                certificate.user == account.user, certificate.device == device.deviceId,
                ApprovalCode.compute(device: device.deviceId, signatureKey: certificate.signatureKey, transferKey: transferKey) == code
            else { continue }
            let approval = try identity.approve(
                user: certificate.user, device: certificate.device, signatureKey: certificate.signatureKey,
                cipherSuite: certificate.cipherSuite, at: now)
            let provider = try self.provider
            try provider.validateHPKEPublicKey(HPKEPublicKey(transferKey))
            let sealed = try provider.encryptWithLabel(
                HPKEPublicKey(transferKey), label: Self.transferLabel, context: Array(device.deviceId.value.utf8), plaintext: identity.seed)
            let _: [String: Bool] = try await api.post(
                "/v1/devices/\(device.deviceId)/approve",
                ApproveDevice(approval: Base64Bytes(approval.tlsSerialized), sealedIdentity: Base64Bytes(sealed.tlsSerialized)))
            return OwnDevice(id: device.deviceId, name: device.name, pending: false, current: false, createdAt: device.createdAt)
        }
        throw ClientError.invalid("no device of yours waiting for approval shows this code (a changed key changes the code)")
    }

    /// A13: signs one of this user's other devices out (a device the user
    /// does not recognise, or lost).
    public func removeDevice(_ id: DeviceID) async throws {
        let (account, _, _) = try requireAccount()
        guard id != account.device else { throw ClientError.invalid("to sign this device out, use logout") }
        let _: [String: Bool] = try await api.delete("/v1/devices/\(id)")
    }

    /// Devices that signed in to this account (or were approved, or went)
    /// since this device last looked: each is told once.
    func ownDeviceChanges() async throws -> [ClientEvent] {
        guard !isPending else { return [] }
        let current = try await devices()
        let known: [String: Bool] =
            try await store.meta("devices").flatMap { try? JSONDecoder().decode([String: Bool].self, from: Data($0)) }
            ?? [:]
        var events: [ClientEvent] = []
        if !known.isEmpty {
            for device in current where !device.current {
                switch known[device.id.value] {
                case nil: events.append(.ownDevice(device, change: device.pending ? .signedIn : .approved))
                case true? where !device.pending: events.append(.ownDevice(device, change: .approved))
                default: break
                }
            }
            let present = Set(current.map(\.id.value))
            for id in known.keys where !present.contains(id) {
                guard let device = DeviceID(id) else { continue }
                events.append(
                    .ownDevice(OwnDevice(id: device, name: "", pending: false, current: false, createdAt: Date()), change: .removed))
            }
        }
        let next = Dictionary(uniqueKeysWithValues: current.map { ($0.id.value, $0.pending) })
        if next != known { try await store.setMeta("devices", Array(try JSONEncoder().encode(next))) }
        return events
    }

    // MARK: Contacts

    /// C6: the leaf carries its user's approval of this device, under the
    /// user's identity key as this device knows it: its own; a contact's as
    /// pinned the first time one of the contact's leaves or keys was seen
    /// (C7: the key a valid approval names, when there is no pin yet: no
    /// more trust than taking the server's word on first use). A leaf that
    /// does not verify with the pin makes the device ask the server: a
    /// changed key is pinned anew and told, unless the user verified the
    /// old one, in which case nothing is sent until the user verifies again.
    func isApproved(_ certificate: VerifiedDeviceCertificate, leaf: LeafNode) async throws -> Bool {
        guard let approval = DeviceApproval(leaf: leaf) else { return false }
        let (account, _, _) = try requireAccount()
        if certificate.user == account.user {
            guard let identity = identityKey else { return false }
            return approval.isValid(for: certificate, identity: identity.publicKey)
        }
        let pins = try await contactPins()
        guard let pin = pins[certificate.user.description] else {
            // C9: the first key pinned for a contact is the one their network's log holds.
            guard approval.isValid(for: certificate, identity: approval.identityKey),
                let key = try await contactIdentity(certificate.user)
            else { return false }
            return approval.identityKey == key
        }
        if approval.isValid(for: certificate, identity: UserIdentityPublicKey(rawKey: pin.key.bytes)) {
            // A pin proved in the log within the day is taken as it is; an older one is proved again first (C9), so a key
            // the log has since replaced does not go on approving devices. When the log cannot be asked now (a server,
            // a network or its witnesses unreachable), a pin proved in the last week stands, so that a message is not
            // lost for an outage; anything the check proves wrong is thrown.
            let now = clock()
            if pin.isFresh(at: now) { return true }
            let key: UserIdentityPublicKey?
            do {
                key = try await contactIdentity(certificate.user)
            } catch let error as ClientError where error.isOutage && pin.isUsable(at: now) {
                return true
            }
            guard let key else { return false }
            return approval.identityKey == key && approval.isValid(for: certificate, identity: key)
        }
        guard let key = try await contactIdentity(certificate.user) else { return false }
        return approval.identityKey == key && approval.isValid(for: certificate, identity: key)
    }

    /// The contact's identity key, asked of the server and checked against
    /// the pin (nil when the user has none).
    @discardableResult
    func contactIdentity(_ user: UserAddress) async throws -> UserIdentityPublicKey? {
        guard let key = try await serverIdentity(of: user) else { return nil }
        var pins = try await contactPins()
        let now = clock()
        if let pin = pins[user.description], pin.key.bytes != key.rawKey {
            if pin.verified { throw ClientError.identityChanged(user) }
            pins[user.description] = ContactPin(key: Base64Bytes(key.rawKey), verified: false, checkedAt: now)
            let repinned = pins
            try await store.atomically {
                try await self.saveContactPins(repinned)
                try await self.holdEvents([.identityChanged(user)])
            }
        } else if pins[user.description]?.isFresh(at: now) != true {
            pins[user.description] = ContactPin(
                key: Base64Bytes(key.rawKey), verified: pins[user.description]?.verified ?? false, checkedAt: now)
            try await saveContactPins(pins)
        }
        return key
    }

    /// The identity key the server names for a user now (nil when the user
    /// has none), with its proof checked (C9), the pin not touched.
    private func serverIdentity(of user: UserAddress) async throws -> UserIdentityPublicKey? {
        let info: UserIdentityInfo
        do {
            info = try await api.get("/v1/users/\(user)/identity")
        } catch let error as ClientError where error.code == .notFound {
            return nil
        }
        guard info.user == user, info.identityKey.bytes.count == 32 else {
            throw ClientError.invalid("the server answered for another user")
        }
        try await checkTransparency(info)
        return UserIdentityPublicKey(rawKey: info.identityKey.bytes)
    }

    func contactPins() async throws -> [String: ContactPin] {
        if let contactPinCache { return contactPinCache }
        guard let bytes = try await store.meta("contacts") else { return [:] }
        guard let pins = try? ConclaveJSON.decoder().decode([String: ContactPin].self, from: Data(bytes)) else {
            throw ClientError.localStore("the pinned identity keys are unreadable")
        }
        contactPinCache = pins
        return pins
    }

    private func saveContactPins(_ pins: [String: ContactPin]) async throws {
        contactPinCache = nil  // read again after the write (which may be rolled back with its transaction)
        try await store.setMeta("contacts", Array(try ConclaveJSON.encoder().encode(pins)))
    }

    /// The safety number of this user and `user` (docs/client.md): the same
    /// 60 digits on both sides when each holds the other's real identity key.
    public func safetyNumber(with user: UserAddress) async throws -> String {
        let (account, _, _) = try requireAccount()
        guard let own = identityKey else { throw ClientError.invalid("this device does not hold your identity key yet (is it approved?)") }
        // Computed from the key the server gives now (a changed key shows a changed number; the pin is not touched).
        guard let theirs = try await serverIdentity(of: user) else { throw ClientError.invalid("\(user) has no identity key") }
        return SafetyNumber.compute((account.user, own.publicKey), (user, theirs))
    }

    /// Marks a contact verified when `number` is the safety number: from
    /// then on, a change of their identity key stops sending to them until
    /// they are verified again.
    public func verify(_ user: UserAddress, safetyNumber number: String) async throws {
        let (account, _, _) = try requireAccount()
        guard let own = identityKey else { throw ClientError.invalid("this device does not hold your identity key yet (is it approved?)") }
        guard let key = try await serverIdentity(of: user) else { throw ClientError.invalid("\(user) has no identity key") }
        guard SafetyNumber.normalise(number) == SafetyNumber.compute((account.user, own.publicKey), (user, key)) else {
            throw ClientError.safetyNumberMismatch(user)
        }
        var pins = try await contactPins()
        pins[user.description] = ContactPin(key: Base64Bytes(key.rawKey), verified: true, checkedAt: clock())
        try await saveContactPins(pins)
    }

    /// Whether the user verified this contact's current identity key.
    public func isVerified(_ user: UserAddress) async throws -> Bool { try await contactPins()[user.description]?.verified == true }
}
