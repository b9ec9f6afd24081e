import ConclaveProtocol
import Foundation

// MARK: - JSON

/// A JSON value, as SCIM requests bring them and SCIM answers send them.
/// Read with `JSONDecoder`, which keeps `true`/`false` apart from numbers
/// (so `"active": 1` is a wrong type, not `true`), and `Sendable`.
enum SCIMJSON: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([SCIMJSON])
    case object([String: SCIMJSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([SCIMJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: SCIMJSON].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The UTF-8 JSON text, keys sorted.
    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}

// MARK: - URNs and errors

/// The schema and message URNs this server speaks (RFC 7643 §8.7, RFC 7644 §3).
enum SCIMSchema {
    static let user = "urn:ietf:params:scim:schemas:core:2.0:User"
    static let group = "urn:ietf:params:scim:schemas:core:2.0:Group"
    static let serviceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    static let resourceType = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
    static let schema = "urn:ietf:params:scim:schemas:core:2.0:Schema"
    static let listResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    static let error = "urn:ietf:params:scim:api:messages:2.0:Error"
}

/// A SCIM error (RFC 7644 §3.12): the HTTP status, the `scimType` of a 400
/// or 409 when one fits, and a detail that quotes nothing of the request
/// beyond a valid name.
struct SCIMError: Error, Sendable, Equatable {
    let status: Int
    let scimType: String?
    let detail: String

    static func invalidValue(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: "invalidValue", detail: detail) }
    static func invalidSyntax(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: "invalidSyntax", detail: detail) }
    static func invalidFilter(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: "invalidFilter", detail: detail) }
    static func invalidPath(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: "invalidPath", detail: detail) }
    static func mutability(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: "mutability", detail: detail) }
    static func notFound(_ what: String) -> SCIMError { SCIMError(status: 404, scimType: nil, detail: "\(what) not found") }
    static let noTarget = SCIMError(status: 400, scimType: "noTarget", detail: "a remove operation needs a path")
    static let unauthenticated = SCIMError(status: 401, scimType: nil, detail: "a valid SCIM bearer token is required")
    /// A path under `/scim/v2` that names no endpoint.
    static let noEndpoint = SCIMError(status: 404, scimType: nil, detail: "no such SCIM endpoint")
    /// A method an endpoint does not have; `allow` lists those it has (also the answer's `Allow` header).
    static func methodNotAllowed(_ allow: String) -> SCIMError {
        SCIMError(status: 405, scimType: nil, detail: "this endpoint answers \(allow) only")
    }
    /// `POST …/.search` (RFC 7644 §3.4.3): a 501, which RFC 7644 §3.12 gives to an operation not supported.
    static let searchNotSupported = SCIMError(
        status: 501, scimType: nil, detail: "searching with POST is not supported: use GET with filter")
    static let unexpected = SCIMError(status: 500, scimType: nil, detail: "internal error")

    /// The error body: `schemas`, `status` (a string), `scimType` when set, `detail`.
    var body: SCIMJSON {
        var body: [String: SCIMJSON] = [
            "schemas": .array([.string(SCIMSchema.error)]), "status": .string(String(status)), "detail": .string(detail),
        ]
        if let scimType { body["scimType"] = .string(scimType) }
        return .object(body)
    }
}

extension SCIMError {
    /// The SCIM form of a service's error: not found → 404; a name taken →
    /// 409 `uniqueness`; a value refused → 400 `invalidValue`; a group still
    /// in use → 409; another client error keeps its status and message;
    /// a server error is a 500 without details.
    init(_ error: APIError) {
        switch error.code {
        case .notFound: self.init(status: 404, scimType: nil, detail: error.message)
        case .userExists, .groupExists: self.init(status: 409, scimType: "uniqueness", detail: error.message)
        case .badRequest, .unknownGroup, .invalidPolicy: self.init(status: 400, scimType: "invalidValue", detail: error.message)
        case .groupInUse: self.init(status: 409, scimType: nil, detail: error.message)
        case .unauthenticated: self = .unauthenticated
        default:
            let status = error.code.status
            self = status < 500 ? SCIMError(status: status, scimType: nil, detail: error.message) : .unexpected
        }
    }
}

// MARK: - Requests

/// A JSON object of a request, its attribute names lower-cased: SCIM names
/// are case-insensitive (RFC 7643 §2.1). A `null` is an absent attribute
/// (§2.5). Attributes this server does not keep are there to be ignored.
struct SCIMAttributes: Sendable {
    private let values: [String: SCIMJSON]

    /// The object `value` is (400 `invalidSyntax` otherwise, or when two
    /// names differ in case only); `what` names it in the error.
    init(_ value: SCIMJSON, what: String) throws {
        guard case .object(let object) = value else { throw SCIMError.invalidSyntax("\(what) is not a JSON object") }
        var lowered: [String: SCIMJSON] = [:]
        for (name, member) in object {
            guard lowered.updateValue(member, forKey: name.lowercased()) == nil else {
                throw SCIMError.invalidSyntax("\(what) has an attribute twice")
            }
        }
        values = lowered
    }

    /// A request body: a JSON object.
    init(body: [UInt8]) throws {
        guard let value = try? JSONDecoder().decode(SCIMJSON.self, from: Data(body)) else {
            throw SCIMError.invalidSyntax("the body is not a JSON object")
        }
        try self.init(value, what: "the body")
    }

    /// An attribute by its name in any case; nil when absent or null.
    subscript(name: String) -> SCIMJSON? {
        guard let value = values[name.lowercased()], value != .null else { return nil }
        return value
    }

    /// A boolean attribute; another type is a 400 `invalidValue`.
    /// A Boolean attribute. The strings `"True"`/`"False"` (any case) count
    /// too: Entra ID's older provisioning sends them, and refusing its
    /// `"active": "False"` would leave a deprovisioned user active.
    func bool(_ name: String) throws -> Bool? {
        guard let value = self[name] else { return nil }
        switch value {
        case .bool(let flag): return flag
        case .string(let text) where text.lowercased() == "true": return true
        case .string(let text) where text.lowercased() == "false": return false
        default: throw SCIMError.invalidValue("\(name) must be true or false")
        }
    }

    /// A string attribute; another type is a 400 `invalidValue`.
    func string(_ name: String) throws -> String? {
        guard let value = self[name] else { return nil }
        guard case .string(let text) = value else { throw SCIMError.invalidValue("\(name) must be a string") }
        return text
    }
}

/// One operation of a PATCH (RFC 7644 §3.5.2).
struct SCIMPatchOperation: Sendable, Equatable {
    enum Op: String, Sendable {
        case add, replace, remove
    }

    var op: Op
    /// The path as given, trimmed; nil when absent or empty.
    var path: String?
    var value: SCIMJSON?

    /// The `Operations` of a PATCH body, in order. `op` is case-insensitive
    /// (`Replace` is `replace`); the body's `schemas` is not checked.
    static func operations(of body: SCIMAttributes) throws -> [SCIMPatchOperation] {
        guard case .array(let list)? = body["Operations"] else { throw SCIMError.invalidSyntax("Operations must be a list") }
        return try list.map { item in
            let operation = try SCIMAttributes(item, what: "an operation")
            guard let name = try operation.string("op"), let op = Op(rawValue: name.lowercased()) else {
                throw SCIMError.invalidSyntax("op must be add, replace or remove")
            }
            let path = try operation.string("path")?.trimmingCharacters(in: .whitespaces)
            return SCIMPatchOperation(op: op, path: path?.isEmpty == false ? path : nil, value: operation["value"])
        }
    }

    /// The value of an add or replace (400 `invalidValue` when absent or null).
    func requiredValue() throws -> SCIMJSON {
        guard let value, value != .null else { throw SCIMError.invalidValue("an add or replace operation needs a value") }
        return value
    }
}

/// PATCH paths.
enum SCIMPath {
    /// A path lower-cased (names are case-insensitive), without the
    /// resource's core schema URN: `urn:…:core:2.0:User:active` is `active`.
    static func attribute(_ path: String, schema: String) -> String {
        let lowered = path.lowercased()
        let prefix = schema.lowercased() + ":"
        return lowered.hasPrefix(prefix) ? String(lowered.dropFirst(prefix.count)) : lowered
    }

    /// The user a `members[value eq "bob"]` path (lower-cased by
    /// ``attribute(_:schema:)``) names; nil for a path that is not a member
    /// filter; another form of member filter is a 400 `invalidPath`.
    static func memberFilter(_ attribute: String) throws -> String? {
        let opening = "members["
        guard attribute.hasPrefix(opening) else { return nil }
        guard attribute.hasSuffix("]"), let filter = SCIMEquality(String(attribute.dropFirst(opening.count).dropLast())),
            filter.attribute.lowercased() == "value"
        else { throw SCIMError.invalidPath("a member path must be members[value eq \"…\"]") }
        return filter.value
    }
}

/// An equality filter, `attribute eq "value"` (RFC 7644 §3.4.2.2): the one
/// form this server answers. The operator is case-insensitive; spaces, or a
/// form-encoded `+`, separate the parts; the value is a JSON string.
struct SCIMEquality: Sendable, Equatable {
    /// As written (callers compare it lower-cased).
    let attribute: String
    let value: String

    /// Nil when `text` is not of this form.
    init?(_ text: String) {
        let isSeparator: (Character) -> Bool = { $0.isWhitespace || $0 == "+" }
        let start = text.drop(while: isSeparator)
        guard let attributeEnd = start.firstIndex(where: isSeparator) else { return nil }
        let rest = start[attributeEnd...].drop(while: isSeparator)
        guard let operatorEnd = rest.firstIndex(where: isSeparator), rest[..<operatorEnd].lowercased() == "eq" else { return nil }
        let quoted = rest[operatorEnd...].drop(while: isSeparator)
        guard let last = quoted.lastIndex(where: { !isSeparator($0) }), quoted.first == "\"",
            let value = try? JSONDecoder().decode(String.self, from: Data(quoted[...last].utf8))
        else { return nil }
        attribute = String(start[..<attributeEnd])
        self.value = value
    }

    /// The value of `filter` when it is `attribute eq "…"` (the attribute
    /// in any case, with or without `schema`'s URN); any other filter is a
    /// 400 `invalidFilter`.
    static func filterValue(_ filter: String, attribute: String, schema: String) throws -> String {
        guard let equality = SCIMEquality(filter), SCIMPath.attribute(equality.attribute, schema: schema) == attribute.lowercased()
        else { throw SCIMError.invalidFilter("the only filter supported is \(attribute) eq \"…\"") }
        return equality.value
    }
}

/// A page of a list (RFC 7644 §3.4.2.4): `startIndex` is 1-based (below 1
/// reads as 1); `count` defaults to 100, a negative one reads as 0 and one
/// above 1000 as 1000. A value that is not an integer is a 400 `invalidValue`.
struct SCIMPage: Sendable, Equatable {
    static let maximumCount = 1000
    let startIndex: Int
    let count: Int

    init(startIndex: String?, count: String?) throws {
        let start = try Self.integer(startIndex, "startIndex") ?? 1
        let wanted = try Self.integer(count, "count") ?? 100
        self.startIndex = max(1, start)
        self.count = min(Self.maximumCount, max(0, wanted))
    }

    private static func integer(_ text: String?, _ name: String) throws -> Int? {
        guard let text else { return nil }
        guard let number = Int(text) else { throw SCIMError.invalidValue("\(name) must be an integer") }
        return number
    }

    /// The page's share of `items`.
    func window<Item>(_ items: [Item]) -> ArraySlice<Item> {
        let lower = min(startIndex - 1, items.count)
        return items[lower..<min(lower + count, items.count)]
    }
}

/// What a request asks of a resource's `externalId` (RFC 7643 §3.1: a
/// string the directory owns, kept as given). Absent or null, it stays as
/// it is.
enum SCIMExternalIDChange: Sendable, Equatable {
    case unchanged
    case set(String)
    case removed

    /// From a resource: the body of a POST or PUT, or the value of a PATCH
    /// operation without a path. Not a string: 400 `invalidValue`.
    init(resource: SCIMAttributes) throws {
        if let value = try resource.string("externalId") { self = .set(value) } else { self = .unchanged }
    }

    /// From a PATCH operation whose path is `externalId`: add and replace
    /// set it (a string), remove clears it.
    init(operation: SCIMPatchOperation) throws {
        guard operation.op != .remove else {
            self = .removed
            return
        }
        let value = SCIMJSON.object(["externalId": try operation.requiredValue()])
        self = try SCIMExternalIDChange(resource: try SCIMAttributes(value, what: "an operation's value"))
    }

    /// `later` when it asks anything, this otherwise.
    func then(_ later: SCIMExternalIDChange) -> SCIMExternalIDChange { later == .unchanged ? self : later }
}

/// What a request asks of a user: only the attributes this server keeps.
struct SCIMUserChange: Sendable, Equatable {
    var userName: String?
    var active: Bool?
    var password: String?
    var externalID: SCIMExternalIDChange = .unchanged

    /// The kept attributes, lower-cased, with their names in messages.
    private static let kept = ["username": "userName", "active": "active", "password": "password", "externalid": "externalId"]

    init(userName: String? = nil, active: Bool? = nil, password: String? = nil, externalID: SCIMExternalIDChange = .unchanged) {
        self.userName = userName
        self.active = active
        self.password = password
        self.externalID = externalID
    }

    /// From a User resource: the body of a POST or PUT, or the value of a
    /// PATCH operation without a path.
    init(resource: SCIMAttributes) throws {
        userName = try resource.string("userName")
        active = try resource.bool("active")
        password = try resource.string("password")
        externalID = try SCIMExternalIDChange(resource: resource)
    }

    /// From a PATCH's operations, in order: a later one wins.
    init(operations: [SCIMPatchOperation]) throws {
        for operation in operations { try apply(operation) }
    }

    /// One operation: on `userName`, `active`, `password` or `externalId`
    /// (any case, with or without the User schema URN), or without a path on
    /// its value object's attributes (Entra ID's `{"active": false}`). A
    /// path to an attribute this server does not keep is ignored. `remove`
    /// needs a path, and removes `externalId` only: the other kept attributes
    /// cannot be removed (userName: `mutability`; `active`, required in the
    /// published schema, and `password`: `invalidValue`).
    private mutating func apply(_ operation: SCIMPatchOperation) throws {
        guard let path = operation.path else {
            guard operation.op != .remove else { throw SCIMError.noTarget }
            merge(try SCIMUserChange(resource: SCIMAttributes(try operation.requiredValue(), what: "an operation's value")))
            return
        }
        let attribute = SCIMPath.attribute(path, schema: SCIMSchema.user)
        guard let name = Self.kept[attribute] else { return }
        if attribute == "externalid" {
            externalID = externalID.then(try SCIMExternalIDChange(operation: operation))
            return
        }
        guard operation.op != .remove else {
            throw attribute == "username" ? SCIMError.mutability("userName cannot be removed") : .invalidValue("\(name) cannot be removed")
        }
        let given = try operation.requiredValue()
        merge(try SCIMUserChange(resource: SCIMAttributes(.object([name: given]), what: "an operation's value")))
    }

    private mutating func merge(_ other: SCIMUserChange) {
        userName = other.userName ?? userName
        active = other.active ?? active
        password = other.password ?? password
        externalID = externalID.then(other.externalID)
    }
}

/// One change to a group's member list; values are user names as sent.
enum SCIMMemberEdit: Sendable, Equatable {
    case add([String])
    case remove([String])
    case removeAll
    case replace([String])
}

/// What a request asks of a group: its name (which cannot change), its
/// `externalId`, and member edits, applied in order.
struct SCIMGroupChange: Sendable, Equatable {
    var displayName: String?
    var externalID: SCIMExternalIDChange = .unchanged
    var edits: [SCIMMemberEdit] = []

    /// From a Group resource (POST, PUT): `members`, when given, is the
    /// whole list; absent or null, the members stay as they are.
    init(resource: SCIMAttributes) throws {
        displayName = try resource.string("displayName")
        externalID = try SCIMExternalIDChange(resource: resource)
        if let members = resource["members"] { edits = [.replace(try Self.memberValues(members))] }
    }

    /// From a PATCH's operations, in order.
    init(operations: [SCIMPatchOperation]) throws {
        for operation in operations { try apply(operation) }
    }

    /// One operation: path `members` (add, replace as a whole list, remove
    /// the listed values or, without a value, everyone), path
    /// `members[value eq "bob"]` (remove only), path `displayName`, path
    /// `externalId` (remove clears it), or no path with a value object
    /// holding `displayName`, `externalId` and/or `members`. Paths to
    /// attributes this server does not keep are ignored.
    private mutating func apply(_ operation: SCIMPatchOperation) throws {
        guard let path = operation.path else {
            guard operation.op != .remove else { throw SCIMError.noTarget }
            let value = try SCIMAttributes(try operation.requiredValue(), what: "an operation's value")
            displayName = try value.string("displayName") ?? displayName
            externalID = externalID.then(try SCIMExternalIDChange(resource: value))
            if let members = value["members"] { edits.append(Self.edit(operation.op, try Self.memberValues(members))) }
            return
        }
        let attribute = SCIMPath.attribute(path, schema: SCIMSchema.group)
        if attribute == "members" {
            if operation.op == .remove, operation.value == nil || operation.value == .null {
                edits.append(.removeAll)
            } else {
                edits.append(Self.edit(operation.op, try Self.memberValues(try operation.requiredValue())))
            }
        } else if attribute == "externalid" {
            externalID = externalID.then(try SCIMExternalIDChange(operation: operation))
        } else if attribute == "displayname" {
            guard operation.op != .remove else { throw SCIMError.mutability("displayName cannot be removed") }
            let given = try operation.requiredValue()
            displayName = try SCIMAttributes(.object(["displayName": given]), what: "an operation's value").string("displayName")
        } else if let member = try SCIMPath.memberFilter(attribute) {
            guard operation.op == .remove else { throw SCIMError.invalidPath("a members[value eq \"…\"] path is for remove only") }
            edits.append(.remove([member]))
        }
    }

    private static func edit(_ op: SCIMPatchOperation.Op, _ values: [String]) -> SCIMMemberEdit {
        switch op {
        case .add: .add(values)
        case .replace: .replace(values)
        case .remove: .remove(values)
        }
    }

    /// The `value`s of a member list: objects with a string `value` (one
    /// object alone is a list of one). A member's `display` and `$ref` are
    /// ignored, and so is its `type`, which can only be `User` (any case:
    /// the attribute is not case-exact); another is a 400 `invalidValue`.
    static func memberValues(_ json: SCIMJSON) throws -> [String] {
        var items = [json]
        if case .array(let list) = json { items = list }
        return try items.map { item in
            let member = try SCIMAttributes(item, what: "a member")
            if let type = try member.string("type"), type.lowercased() != "user" {
                throw SCIMError.invalidValue("a member's type must be User")
            }
            guard let value = try member.string("value") else { throw SCIMError.invalidValue("a member needs a value") }
            return value
        }
    }
}

// MARK: - Resources and discovery

/// The JSON of SCIM answers. `base` is the SCIM root URL,
/// `<public URL>/scim/v2`.
enum SCIMDocuments {
    static func userLocation(_ name: UserName, base: String) -> String { "\(base)/Users/\(name)" }
    static func groupLocation(_ name: String, base: String) -> String { "\(base)/Groups/\(name)" }

    /// What attribute selection needs of the User and Group schemas below.
    static let userReturns = SCIMReturnRules(schema: SCIMSchema.user, attributes: userAttributes)
    static let groupReturns = SCIMReturnRules(schema: SCIMSchema.group, attributes: groupAttributes)

    /// A User: `id` and `userName` are the user name; `externalId` the
    /// directory's, when it gave one; `active` is not suspended; `groups`
    /// the one security group. Never the password. `selection` (the
    /// request's `attributes` or `excludedAttributes`) picks the attributes.
    static func user(_ user: SCIMUser, base: String, selection: SCIMSelection = SCIMSelection()) -> SCIMJSON {
        let group = SCIMJSON.object([
            "value": .string(user.group), "display": .string(user.group), "$ref": .string(groupLocation(user.group, base: base)),
        ])
        var resource: [String: SCIMJSON] = [
            "schemas": .array([.string(SCIMSchema.user)]),
            "id": .string(user.name.value),
            "userName": .string(user.name.value),
            "active": .bool(user.active),
            "groups": .array([group]),
            "meta": meta("User", location: userLocation(user.name, base: base), created: user.created),
        ]
        if let externalID = user.externalID { resource["externalId"] = .string(externalID) }
        return selection.apply(.object(resource), userReturns)
    }

    /// A Group: `id` and `displayName` are the security group's name;
    /// `externalId` the directory's, when it gave one; `members` its
    /// accounts, each with `value`, `$ref` and `type`, and with `display`
    /// (returned on request only) when `selection` names `members.display`.
    static func group(_ group: SCIMGroup, base: String, selection: SCIMSelection = SCIMSelection()) -> SCIMJSON {
        let members = group.members.map { member in
            SCIMJSON.object([
                "value": .string(member.value), "display": .string(member.value), "$ref": .string(userLocation(member, base: base)),
                "type": .string("User"),
            ])
        }
        var resource: [String: SCIMJSON] = [
            "schemas": .array([.string(SCIMSchema.group)]),
            "id": .string(group.name.value),
            "displayName": .string(group.name.value),
            "members": .array(members),
            "meta": meta("Group", location: groupLocation(group.name.value, base: base)),
        ]
        if let externalID = group.externalID { resource["externalId"] = .string(externalID) }
        return selection.apply(.object(resource), groupReturns)
    }

    /// A ListResponse: `itemsPerPage` is how many resources this page holds.
    static func list(_ resources: [SCIMJSON], total: Int, startIndex: Int) -> SCIMJSON {
        .object([
            "schemas": .array([.string(SCIMSchema.listResponse)]),
            "totalResults": .integer(total),
            "startIndex": .integer(startIndex),
            "itemsPerPage": .integer(resources.count),
            "Resources": .array(resources),
        ])
    }

    static func list<Item: Sendable>(_ listing: SCIMListing<Item>, _ render: (Item) -> SCIMJSON) -> SCIMJSON {
        list(listing.items.map(render), total: listing.total, startIndex: listing.startIndex)
    }

    private static func meta(_ resourceType: String, location: String, created: Date? = nil) -> SCIMJSON {
        var meta: [String: SCIMJSON] = ["resourceType": .string(resourceType), "location": .string(location)]
        if let created { meta["created"] = .string(ConclaveJSON.formatTimestamp(created)) }
        return .object(meta)
    }

    /// What this server supports: PATCH, equality filters (up to 1000
    /// results), password changes; no bulk, sorting or ETags; bearer tokens.
    static func serviceProviderConfig(base: String) -> SCIMJSON {
        let bearer = SCIMJSON.object([
            "type": .string("oauthbearertoken"), "name": .string("OAuth Bearer Token"), "primary": .bool(true),
            "description": .string("A SCIM token of this network, in the Authorization header: Bearer <token>"),
        ])
        return .object([
            "schemas": .array([.string(SCIMSchema.serviceProviderConfig)]),
            "patch": .object(["supported": .bool(true)]),
            "bulk": .object(["supported": .bool(false), "maxOperations": .integer(0), "maxPayloadSize": .integer(0)]),
            "filter": .object(["supported": .bool(true), "maxResults": .integer(SCIMPage.maximumCount)]),
            "changePassword": .object(["supported": .bool(true)]),
            "sort": .object(["supported": .bool(false)]),
            "etag": .object(["supported": .bool(false)]),
            "authenticationSchemes": .array([bearer]),
            "meta": meta("ServiceProviderConfig", location: "\(base)/ServiceProviderConfig"),
        ])
    }

    static func resourceTypes(base: String) -> [SCIMJSON] { resourceTypeEntries(base: base).map(\.document) }

    /// The resource type `id` names (`User`, `Group`; any case), or nil.
    static func resourceType(_ id: String, base: String) -> SCIMJSON? {
        resourceTypeEntries(base: base).first { $0.id.lowercased() == id.lowercased() }?.document
    }

    static func schemas(base: String) -> [SCIMJSON] { schemaEntries(base: base).map(\.document) }

    /// The schema `id` (its URN, any case) names, or nil.
    static func schema(_ id: String, base: String) -> SCIMJSON? {
        schemaEntries(base: base).first { $0.id.lowercased() == id.lowercased() }?.document
    }

    private static func resourceTypeEntries(base: String) -> [(id: String, document: SCIMJSON)] {
        [
            ("User", resourceType("User", endpoint: "/Users", schema: SCIMSchema.user, description: "An account", base: base)),
            ("Group", resourceType("Group", endpoint: "/Groups", schema: SCIMSchema.group, description: "A security group", base: base)),
        ]
    }

    private static func resourceType(_ name: String, endpoint: String, schema: String, description: String, base: String) -> SCIMJSON {
        .object([
            "schemas": .array([.string(SCIMSchema.resourceType)]),
            "id": .string(name),
            "name": .string(name),
            "endpoint": .string(endpoint),
            "description": .string(description),
            "schema": .string(schema),
            "meta": meta("ResourceType", location: "\(base)/ResourceTypes/\(name)"),
        ])
    }

    private static func schemaEntries(base: String) -> [(id: String, document: SCIMJSON)] {
        [
            (SCIMSchema.user, schemaDocument(SCIMSchema.user, name: "User", description: "An account", userAttributes, base: base)),
            (
                SCIMSchema.group,
                schemaDocument(SCIMSchema.group, name: "Group", description: "A security group", groupAttributes, base: base)
            ),
        ]
    }

    private static func schemaDocument(
        _ id: String, name: String, description: String, _ attributes: [SCIMAttributeDefinition], base: String
    ) -> SCIMJSON {
        .object([
            "schemas": .array([.string(SCIMSchema.schema)]),
            "id": .string(id),
            "name": .string(name),
            "description": .string(description),
            "attributes": .array(attributes.map(\.json)),
            "meta": meta("Schema", location: "\(base)/Schemas/\(id)"),
        ])
    }

    /// The User attributes this server keeps (`id`, `externalId` and `meta`
    /// are common attributes, not part of a schema: RFC 7643 §3.1). `active`
    /// is required: every account is active or suspended, so it cannot be
    /// removed.
    private static let userAttributes = [
        SCIMAttributeDefinition(
            name: "userName", type: "string",
            description: "The user name, also the id: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
            required: true, mutability: "immutable", returned: "always", uniqueness: "server"),
        SCIMAttributeDefinition(
            name: "active", type: "boolean", description: "Whether the account may be used; false suspends it", required: true),
        SCIMAttributeDefinition(
            name: "password", type: "string", description: "8 to 1024 characters; without one the account signs in through single sign-on",
            mutability: "writeOnly", returned: "never"),
        SCIMAttributeDefinition(
            name: "groups", type: "complex", description: "The account's security group (exactly one)", multiValued: true,
            mutability: "readOnly",
            subAttributes: [
                SCIMAttributeDefinition(name: "value", type: "string", description: "The security group's id", mutability: "readOnly"),
                SCIMAttributeDefinition(
                    name: "$ref", type: "reference", description: "The security group's URI", caseExact: true, mutability: "readOnly",
                    referenceTypes: ["Group"]),
                SCIMAttributeDefinition(name: "display", type: "string", description: "The security group's name", mutability: "readOnly"),
            ]),
    ]

    /// The Group attributes this server keeps. A member's `display` is
    /// returned only when asked for (`attributes=members.display`); its
    /// `type` is always `User`.
    private static let groupAttributes = [
        SCIMAttributeDefinition(
            name: "displayName", type: "string", description: "The security group's name, also its id", required: true,
            mutability: "immutable", returned: "always", uniqueness: "server"),
        SCIMAttributeDefinition(
            name: "members", type: "complex", description: "The accounts in the security group (an account is in exactly one)",
            multiValued: true,
            subAttributes: [
                SCIMAttributeDefinition(name: "value", type: "string", description: "The user's id", mutability: "immutable"),
                SCIMAttributeDefinition(
                    name: "$ref", type: "reference", description: "The user's URI", caseExact: true, mutability: "immutable",
                    referenceTypes: ["User"]),
                SCIMAttributeDefinition(
                    name: "display", type: "string", description: "The user name", mutability: "readOnly", returned: "request"),
                SCIMAttributeDefinition(
                    name: "type", type: "string", description: "Always User", mutability: "immutable", canonicalValues: ["User"]),
            ]),
    ]
}

/// One attribute of a schema definition (RFC 7643 §7).
struct SCIMAttributeDefinition: Sendable {
    var name: String
    var type: String
    var description: String
    var multiValued = false
    var required = false
    var caseExact = false
    var mutability = "readWrite"
    var returned = "default"
    var uniqueness = "none"
    /// Published only when not empty.
    var canonicalValues: [String] = []
    var referenceTypes: [String] = []
    var subAttributes: [SCIMAttributeDefinition] = []

    var json: SCIMJSON {
        var json: [String: SCIMJSON] = [
            "name": .string(name), "type": .string(type), "description": .string(description), "multiValued": .bool(multiValued),
            "required": .bool(required), "caseExact": .bool(caseExact), "mutability": .string(mutability),
            "returned": .string(returned), "uniqueness": .string(uniqueness),
        ]
        if !canonicalValues.isEmpty { json["canonicalValues"] = .array(canonicalValues.map { .string($0) }) }
        if !referenceTypes.isEmpty { json["referenceTypes"] = .array(referenceTypes.map { .string($0) }) }
        if !subAttributes.isEmpty { json["subAttributes"] = .array(subAttributes.map(\.json)) }
        return .object(json)
    }
}

// MARK: - Attribute selection

/// What attribute selection (RFC 7644 §3.9) needs to know of a resource
/// type, all lower-cased: its core schema (a name may carry its URN), the
/// attributes always returned (`schemas`, `id`, and those the schema marks
/// `always`), and the attributes and sub-attributes returned only when asked
/// for by name (marked `request`; a sub-attribute as `members.display`).
struct SCIMReturnRules: Sendable {
    let schema: String
    let always: Set<String>
    let onRequest: Set<String>

    init(schema: String, attributes: [SCIMAttributeDefinition]) {
        var always: Set<String> = ["schemas", "id"]
        var onRequest: Set<String> = []
        for attribute in attributes {
            let name = attribute.name.lowercased()
            if attribute.returned == "always" { always.insert(name) }
            if attribute.returned == "request" { onRequest.insert(name) }
            for sub in attribute.subAttributes where sub.returned == "request" { onRequest.insert(name + "." + sub.name.lowercased()) }
        }
        self.schema = schema
        self.always = always
        self.onRequest = onRequest
    }
}

/// The `attributes` or `excludedAttributes` query parameter of a request
/// that returns Users or Groups (RFC 7644 §3.9), applied to each rendered
/// resource. Names are comma-separated and case-insensitive, may carry the
/// resource's core schema URN (`urn:…:core:2.0:User:active`), and may name a
/// sub-attribute one level down (`members.value`, `meta.created`); a name of
/// another schema names nothing.
///
/// - With `attributes`: the named attributes (a named sub-attribute keeps
///   its parent with that sub-attribute only), and those always returned.
/// - With `excludedAttributes`: every attribute returned by default but the
///   named ones; one always returned stays.
/// - Without either: the attributes returned by default.
///
/// An attribute or sub-attribute returned on request only (a member's
/// `display`) is there only when `attributes` names it.
struct SCIMSelection: Sendable, Equatable {
    /// An attribute a name designates, lower-cased: `members.value` is
    /// `members` and `value`.
    private struct Name: Equatable {
        let attribute: String
        let sub: String?
    }

    /// The names of `attributes`, lower-cased; nil without the parameter.
    private let included: [String]?
    /// The names of `excludedAttributes`, lower-cased.
    private let excluded: [String]

    /// Nothing asked: the attributes returned by default.
    init() {
        included = nil
        excluded = []
    }

    /// From the query parameters; an empty one is no parameter. The two are
    /// mutually exclusive: both at once are a 400 `invalidSyntax`.
    init(attributes: String?, excludedAttributes: String?) throws {
        let included = Self.names(attributes)
        let excluded = Self.names(excludedAttributes)
        guard included.isEmpty || excluded.isEmpty else {
            throw SCIMError.invalidSyntax("attributes and excludedAttributes cannot be used together")
        }
        self.included = included.isEmpty ? nil : included
        self.excluded = excluded
    }

    private static func names(_ parameter: String?) -> [String] {
        guard let parameter else { return [] }
        return parameter.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
    }

    /// `resource` (a rendered User or Group) with the attributes this
    /// selection returns.
    func apply(_ resource: SCIMJSON, _ rules: SCIMReturnRules) -> SCIMJSON {
        guard case .object(let object) = resource else { return resource }
        let included = self.included?.compactMap { Self.name($0, rules) }
        let excluded = self.excluded.compactMap { Self.name($0, rules) }
        var kept: [String: SCIMJSON] = [:]
        for (key, value) in object {
            if let value = Self.select(key.lowercased(), value, rules, included: included, excluded: excluded) { kept[key] = value }
        }
        return .object(kept)
    }

    /// What a name designates once the schema URN is dropped; nil for a
    /// name of another schema (it still has a colon).
    private static func name(_ text: String, _ rules: SCIMReturnRules) -> Name? {
        let local = SCIMPath.attribute(text, schema: rules.schema)
        guard !local.contains(":") else { return nil }
        guard let dot = local.firstIndex(of: ".") else { return Name(attribute: local, sub: nil) }
        return Name(attribute: String(local[..<dot]), sub: String(local[local.index(after: dot)...]))
    }

    /// What stays of the attribute `name` (lower-cased) and its `value`;
    /// nil when it goes.
    private static func select(
        _ name: String, _ value: SCIMJSON, _ rules: SCIMReturnRules, included: [Name]?, excluded: [Name]
    ) -> SCIMJSON? {
        let asked = (included ?? []).filter { $0.attribute == name }
        let askedSubs = Set(asked.compactMap { $0.sub })
        // A sub-attribute returned on request only stays when it is named.
        let onRequestOnly: (String) -> Bool = { rules.onRequest.contains(name + "." + $0) && !askedSubs.contains($0) }
        if rules.always.contains(name) { return subAttributes(of: value, keepingSimple: true) { !onRequestOnly($0) } }
        if included != nil {
            if asked.contains(where: { $0.sub == nil }) { return subAttributes(of: value, keepingSimple: true) { !onRequestOnly($0) } }
            guard !askedSubs.isEmpty else { return nil }
            return subAttributes(of: value, keepingSimple: false) { askedSubs.contains($0) }
        }
        guard !rules.onRequest.contains(name), !excluded.contains(Name(attribute: name, sub: nil)) else { return nil }
        let excludedSubs = Set(excluded.filter { $0.attribute == name }.compactMap { $0.sub })
        return subAttributes(of: value, keepingSimple: true) { !onRequestOnly($0) && !excludedSubs.contains($0) }
    }

    /// `value` with only the sub-attributes `keep` accepts (given their
    /// lower-cased names): the members of an object, or of each object in a
    /// list. A simple value, alone or in a list, stays when `keepingSimple`.
    /// Nil when nothing is left of what there was.
    private static func subAttributes(of value: SCIMJSON, keepingSimple: Bool, _ keep: (String) -> Bool) -> SCIMJSON? {
        switch value {
        case .object(let members):
            let kept = members.filter { keep($0.key.lowercased()) }
            return kept.isEmpty && !members.isEmpty ? nil : SCIMJSON.object(kept)
        case .array(let items):
            let kept = items.compactMap { item -> SCIMJSON? in
                guard case .object = item else { return keepingSimple ? item : nil }
                return subAttributes(of: item, keepingSimple: keepingSimple, keep)
            }
            return kept.isEmpty && !items.isEmpty ? nil : SCIMJSON.array(kept)
        default:
            return keepingSimple ? value : nil
        }
    }
}
