/// A security group's policy as people type it, in the CLI's options and
/// the console's fields: one parser, one set of error messages for both.
public struct PolicyText: Sendable, Hashable {
    public var mayMessage: String?
    public var federate: String?
    public var ttlMin: String?
    public var ttlMax: String?
    public var ttlDefault: String?
    public var borMax: String?
    public var files: String?
    public var maxFileSize: String?
    public var cipherSuites: String?

    public init(
        mayMessage: String? = nil, federate: String? = nil, ttlMin: String? = nil, ttlMax: String? = nil, ttlDefault: String? = nil,
        borMax: String? = nil, files: String? = nil, maxFileSize: String? = nil, cipherSuites: String? = nil
    ) {
        self.mayMessage = mayMessage
        self.federate = federate
        self.ttlMin = ttlMin
        self.ttlMax = ttlMax
        self.ttlDefault = ttlDefault
        self.borMax = borMax
        self.files = files
        self.maxFileSize = maxFileSize
        self.cipherSuites = cipherSuites
    }

    /// A setting that does not parse: `field` as the CLI's option is named
    /// (`may-message`), and what it takes.
    public struct Invalid: Error, Sendable, Hashable {
        public var field: String
        public var takes: String
    }

    /// The change these settings make; nil fields change nothing.
    public func change() throws(Invalid) -> SecurityGroupChange {
        var change = SecurityGroupChange()
        if let mayMessage {
            guard let reach = GroupReach(mayMessage) else { throw Invalid(field: "may-message", takes: "all or G1,G2") }
            change.mayMessage = reach
        }
        if let federate {
            guard let reach = FederationReach(federate) else { throw Invalid(field: "federate", takes: "none, all or D1,D2") }
            change.federation = reach
        }
        change.messageLifetimeMin = try ttlMin.map { text throws(Invalid) in try Self.duration(text, "ttl-min") }
        change.messageLifetimeMax = try ttlMax.map { text throws(Invalid) in try Self.duration(text, "ttl-max") }
        change.messageLifetimeDefault = try ttlDefault.map { text throws(Invalid) in try Self.duration(text, "ttl-default") }
        change.burnOnReadMax = try borMax.map { text throws(Invalid) in try Self.duration(text, "bor-max") }
        if let files {
            guard ["on", "off"].contains(files) else { throw Invalid(field: "files", takes: "on or off") }
            change.files = files == "on"
        }
        if let maxFileSize {
            guard let bytes = Self.byteSize(maxFileSize) else {
                throw Invalid(field: "max-file-size", takes: "bytes, or a number with K, M or G")
            }
            change.maxFileSize = bytes
        }
        if let cipherSuites {
            guard let policy = CipherSuitePolicy(rawValue: cipherSuites) else {
                throw Invalid(field: "cipher-suites", takes: "classical, pq-preferred or pq-required")
            }
            change.cipherSuites = policy
        }
        return change
    }

    /// The settings of `policy` as they are typed (`7d`, `off`, `100M`).
    public init(_ policy: SecurityGroupPolicy) {
        func duration(_ seconds: UInt64) -> String { seconds == 0 ? "off" : DurationText.format(seconds) }
        self.init(
            mayMessage: policy.mayMessage.description, federate: policy.federation.description, ttlMin: duration(policy.messageLifetimeMin),
            ttlMax: duration(policy.messageLifetimeMax), ttlDefault: duration(policy.messageLifetimeDefault),
            borMax: duration(policy.burnOnReadMax), files: policy.files ? "on" : "off",
            maxFileSize: Self.formatByteSize(policy.maxFileSize),
            cipherSuites: policy.cipherSuites.rawValue)
    }

    /// These settings without those that read as in `current`: what a
    /// form that shows every setting changes.
    public func changes(from current: PolicyText) -> PolicyText {
        func changed(_ new: String?, _ old: String?) -> String? { new == old ? nil : new }
        return PolicyText(
            mayMessage: changed(mayMessage, current.mayMessage), federate: changed(federate, current.federate),
            ttlMin: changed(ttlMin, current.ttlMin), ttlMax: changed(ttlMax, current.ttlMax),
            ttlDefault: changed(ttlDefault, current.ttlDefault),
            borMax: changed(borMax, current.borMax), files: changed(files, current.files),
            maxFileSize: changed(maxFileSize, current.maxFileSize), cipherSuites: changed(cipherSuites, current.cipherSuites))
    }

    /// Seconds, 0 for `off`, `none` or `0`.
    public static func duration(_ text: String, _ field: String) throws(Invalid) -> UInt64 {
        if ["off", "none", "0"].contains(text) { return 0 }
        guard let value = DurationText.seconds(text) else {
            throw Invalid(field: field, takes: "a duration such as 30s, 15m, 2h, 7d (at most ten years), or off")
        }
        return UInt64(value)
    }

    /// Bytes, or a number with K, M or G (1024-based).
    public static func byteSize(_ text: String) -> UInt64? {
        let scales: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let unit = text.uppercased().last, let scale = scales[unit] {
            guard let value = UInt64(text.dropLast()) else { return nil }
            let (bytes, overflow) = value.multipliedReportingOverflow(by: scale)
            return overflow ? nil : bytes
        }
        return UInt64(text)
    }

    /// The largest of G, M, K that states `bytes` exactly, else bytes.
    public static func formatByteSize(_ bytes: UInt64) -> String {
        for (unit, scale) in [("G", UInt64(1) << 30), ("M", 1 << 20), ("K", 1 << 10)] where bytes >= scale && bytes.isMultiple(of: scale) {
            return "\(bytes / scale)\(unit)"
        }
        return "\(bytes)"
    }
}
