import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import NIOHTTP1
import Testing

/// SCIM 2.0 provisioning (docs/server.md#scim): the directory's own token,
/// users and security groups created, changed and removed over SCIM, with
/// their effect on conversations at once, and every change in the audit
/// log under the actor `scim`.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SCIMTests {
    /// A SCIM request with the directory's token; the answer's JSON object.
    struct Directory {
        let http: RawHTTP
        let token: String

        func send(_ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> (status: Int, json: [String: Any]) {
            let answer = try await http.send(
                method, "/scim/v2" + path, token: token, raw: body.map { Array($0.utf8) }, headers: [("Accept", "application/scim+json")])
            let json = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any] ?? [:]
            return (answer.status, json)
        }
    }

    static func directory(_ network: some NetworkFixture) async throws -> Directory {
        Directory(http: RawHTTP(baseURL: network.url), token: try await network.admin.createSCIMToken().token)
    }

    @Test("Only the directory's own token opens SCIM, and it opens nothing else")
    func tokens() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            #expect(try await http.send(.GET, "/scim/v2/Users").status == 401)
            #expect(try await http.send(.GET, "/scim/v2/Users", token: network.adminToken).status == 401)
            let created = try await network.admin.createSCIMToken()
            #expect(try await http.send(.GET, "/scim/v2/Users", token: created.token).status == 200)
            #expect(try await http.send(.GET, "/v1/admin/users", token: created.token).status == 401)
            #expect(try await network.admin.scimTokens().map(\.id) == [created.id])
            try await network.admin.revokeSCIMToken(created.id)
            #expect(try await http.send(.GET, "/scim/v2/Users", token: created.token).status == 401)
            await #expect(throws: ClientError.self) { try await network.admin.revokeSCIMToken(created.id) }
            let audit = try await network.admin.audit().map(\.action)
            #expect(audit.contains("scim.token_create") && audit.contains("scim.token_revoke"))
        }
    }

    @Test(
        "Users and groups from the directory: created, moved, deactivated, deleted, with effect on conversations",
        arguments: Backend.allCases)
    func provisioning(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let directory = try await Self.directory(network)
            let password = network.password
            let created = try await directory.send(
                .POST, "/Users",
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Dana","active":true,"password":"\#(password)","name":{"givenName":"Dana"},"emails":[{"value":"dana@corp.example"}]}"#
            )
            #expect(created.status == 201 && created.json["id"] as? String == "dana" && created.json["password"] == nil)
            #expect(try await directory.send(.POST, "/Users", #"{"userName":"dana"}"#).status == 409)
            #expect(try await directory.send(.POST, "/Users", #"{"userName":"not a name!"}"#).status == 400)
            #expect(try await directory.send(.POST, "/Users", #"{"userName":"erin","active":1}"#).status == 400)
            // Entra ID's older provisioning sends Booleans as strings: "False" deactivates, as false does.
            let erin = try await directory.send(.POST, "/Users", #"{"userName":"erin","active":"False"}"#)
            #expect(erin.status == 201 && erin.json["active"] as? Bool == false)
            #expect(try await directory.send(.DELETE, "/Users/erin").status == 204)
            let found = try await directory.send(
                .GET, "/Users?filter=" + "userName eq \"DANA\"".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(found.status == 200 && found.json["totalResults"] as? Int == 1)
            #expect(try await directory.send(.GET, "/Users?filter=displayName%20co%20%22x%22").status == 400)
            #expect(try await directory.send(.GET, "/Users/nobody").status == 404)

            // dana, made by the directory, signs in with the password it set and joins a room.
            try await network.users("alice")
            let alice = try await network.device("alice")
            let dana = try await network.device("dana")
            let room = try await alice.createRoom(name: "ops", members: [network.address("dana")])
            _ = try await dana.receive()
            try await alice.send("welcome", to: room.id)
            #expect(texts(try await dana.receive()) == ["welcome"])

            // Group membership: a directory group is a security group; a group that may message only itself
            // takes dana out of the room with alice as soon as dana is put in it.
            let isolated = try await directory.send(
                .POST, "/Groups", #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"isolated"}"#)
            #expect(isolated.status == 201)
            let isolatedName = try #require(SecurityGroupName("isolated"))
            _ = try await network.admin.updateGroup(isolatedName, SecurityGroupChange(mayMessage: .only([isolatedName])))
            let patched = try await directory.send(
                .PATCH, "/Groups/isolated",
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"dana"}]}]}"#
            )
            #expect(patched.status == 200)
            #expect(try await network.admin.users().first { $0.name.value == "dana" }?.group == "isolated")
            _ = try await alice.receive()
            try await alice.send("dana moved away", to: room.id)
            #expect(Set(try await alice.conversations().first { $0.id == room.id }?.members ?? []) == [network.address("alice")])
            // Removing dana from the group puts dana back in `default`.
            let removed = try await directory.send(
                .PATCH, "/Groups/isolated",
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"dana\"]"}]}"#
            )
            #expect(removed.status == 200)
            #expect(try await network.admin.users().first { $0.name.value == "dana" }?.group == "default")
            #expect(
                try await directory.send(
                    .PATCH, "/Groups/isolated", #"{"Operations":[{"op":"add","path":"members","value":[{"value":"ghost"}]}]}"#
                ).status == 400)
            #expect(try await directory.send(.DELETE, "/Groups/isolated").status == 204)
            #expect(try await directory.send(.DELETE, "/Groups/default").status != 204)

            // Deactivation (what Entra ID sends): dana is suspended and her devices leave every conversation at once.
            let second = try await alice.createRoom(name: "second", members: [network.address("dana")])
            _ = try await dana.receive()
            let deactivated = try await directory.send(
                .PATCH, "/Users/dana",
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","value":{"active":false}}]}"#)
            #expect(deactivated.status == 200 && deactivated.json["active"] as? Bool == false)
            await #expect(throws: ClientError.self) { _ = try await dana.receive() }
            _ = try await alice.receive()
            try await alice.send("dana is deactivated", to: second.id)
            #expect(Set(try await alice.conversations().first { $0.id == second.id }?.members ?? []) == [network.address("alice")])
            #expect(try await directory.send(.GET, "/Users/dana").json["active"] as? Bool == false)

            // Deletion.
            #expect(try await directory.send(.DELETE, "/Users/dana").status == 204)
            #expect(try await directory.send(.GET, "/Users/dana").status == 404)
            #expect(try await network.admin.users().map(\.name.value) == ["alice"])

            let audit = try await network.admin.audit().filter { $0.actor == "scim" }.map(\.action)
            for action in ["user.create", "group.create", "user.update", "user.suspend", "group.delete", "user.delete"] {
                #expect(audit.contains(action), "no \(action) by scim in the audit log")
            }
        }
    }

    @Test("Discovery: ServiceProviderConfig, ResourceTypes and Schemas say what this server does")
    func discovery() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let directory = try await Self.directory(network)
            let config = try await directory.send(.GET, "/ServiceProviderConfig")
            #expect(config.status == 200)
            #expect((config.json["patch"] as? [String: Any])?["supported"] as? Bool == true)
            #expect((config.json["etag"] as? [String: Any])?["supported"] as? Bool == false)
            #expect((config.json["bulk"] as? [String: Any])?["supported"] as? Bool == false)
            #expect(try await directory.send(.GET, "/ResourceTypes").json["totalResults"] as? Int == 2)
            #expect(try await directory.send(.GET, "/ResourceTypes/User").status == 200)
            #expect(try await directory.send(.GET, "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").status == 200)
            #expect(try await directory.send(.GET, "/Schemas/urn:nothing").status == 404)
            let list = try await directory.send(.GET, "/Users?startIndex=1&count=0")
            #expect(list.status == 200 && list.json["itemsPerPage"] as? Int == 0)
        }
    }
}
