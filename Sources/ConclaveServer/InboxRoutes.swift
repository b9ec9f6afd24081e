import ConclaveProtocol
import ConclaveStorage
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// The inbox: a device reads its own queue over HTTP, or has it pushed over
/// one WebSocket; it acknowledges what it processed (DESIGN.md §4).
extension ServerState {
    func addInboxRoutes(_ router: ConclaveRouter) {
        router.get("/v1/inbox") { request, _ in
            let session = try await self.session(request)
            let after = try Self.integerQuery(request, "after", default: 0, range: 0...Int64.max)
            let limit = try Self.integerQuery(request, "limit", default: 100, range: 1...500)
            return JSONResponse(
                InboxPage(events: try await self.store.inbox(device: session.device.id, after: after, limit: Int(limit), now: self.clock()))
            )
        }
        router.post("/v1/inbox/ack") { request, context in
            let session = try await self.session(request)
            let ack = try await request.decodeJSON(InboxAck.self, context: context)
            return JSONResponse(AckResult(removed: try await self.store.acknowledge(device: session.device.id, upTo: ack.upTo)))
        }
        router.ws("/v1/events") { request, _ in
            _ = try await self.session(request)  // 401 with a JSON body when the token is not valid
            _ = try Self.integerQuery(request, "after", default: 0, range: 0...Int64.max)
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let session = try? await self.session(context.request) else { return }
            let after = try Self.integerQuery(context.request, "after", default: 0, range: 0...Int64.max)
            try await self.streamInbox(session: session, after: after, inbound: inbound, outbound: outbound)
        }
    }

    /// Pushes the device's inbox as JSON text frames, one event each, and
    /// takes `{"ack": seq}` frames back.
    func streamInbox(session: Session, after: Int64, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let device = session.device.id
        let (id, wakeups) = await hub.subscribe(device)
        do {
            try await pushInbox(device: device, after: after, wakeups: wakeups, inbound: inbound, outbound: outbound)
        } catch {
            await hub.unsubscribe(device, id: id)
            throw error
        }
        await hub.unsubscribe(device, id: id)
    }

    private func pushInbox(
        device: DeviceID, after: Int64, wakeups: AsyncStream<Void>, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter
    ) async throws {
        let encoder = ConclaveJSON.encoder()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var cursor = after
                for await _ in wakeups {
                    while true {
                        let events = try await self.store.inbox(device: device, after: cursor, limit: 200, now: self.clock())
                        for event in events {
                            try await outbound.write(.text(String(decoding: try encoder.encode(event), as: UTF8.self)))
                            cursor = event.seq
                        }
                        if events.count < 200 { break }
                    }
                }
                // The device was cut off (suspended, deleted, reset).
                try await outbound.close(.policyViolation, reason: "session ended")
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: 4096) {
                    guard case .text(let text) = message,
                        let ack = try? ConclaveJSON.decoder().decode(WebSocketAck.self, from: Data(text.utf8))
                    else { continue }
                    _ = try await self.store.acknowledge(device: device, upTo: ack.ack)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    static func integerQuery(_ request: Request, _ name: String, default value: Int64, range: ClosedRange<Int64>) throws -> Int64 {
        guard let text = request.uri.queryParameters.get(name) else { return value }
        guard let number = Int64(text), range.contains(number) else { throw APIError.badRequest("\(name) must be an integer in \(range)") }
        return number
    }
}

/// A client's acknowledgement over the WebSocket.
struct WebSocketAck: Decodable {
    let ack: Int64
}
