import ConclaveProtocol
import HTTPTypes
import Hummingbird
import NIOCore

/// Shared files (S1–S7): start an upload, read its status, send its bytes
/// from an offset, download them with ranges.
extension ConclaveAPI {
    func addFileRoutes(_ group: RouterGroup<ConclaveRequestContext>) {
        group.post("/:id/files") { request, context in
            let session = try await session(request)
            guard !session.device.pending else { throw APIError.devicePending }
            let body = try await request.decodeJSON(CreateUpload.self, context: context)
            return JSONResponse(try await files.create(try context.conversationID, body, session: session), status: .created)
        }
        group.get("/:id/files/:file") { request, context in
            let session = try await session(request)
            return JSONResponse(try await files.status(try context.conversationID, try context.fileID, session: session))
        }
        group.put("/:id/files/:file/content") { request, context in
            let session = try await session(request)
            guard let text = request.uri.queryParameters.get("offset"), let offset = UInt64(text) else {
                throw APIError.badRequest("offset (the count of bytes the server holds) is required")
            }
            return JSONResponse(
                try await files.upload(try context.conversationID, try context.fileID, offset: offset, body: request.body, session: session)
            )
        }
        group.post("/:id/files/:file/fetched") { request, context in
            let session = try await session(request)
            return JSONResponse(try await files.fetched(try context.conversationID, try context.fileID, session: session))
        }
        group.get("/:id/files/:file/content") { request, context -> Response in
            let session = try await session(request)
            let download = try await files.download(
                try context.conversationID, try context.fileID, range: request.headers[.range], session: session)
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            headers[.acceptRanges] = "bytes"
            headers[.cacheControl] = "no-store"
            let partial = download.range.count != download.size
            if partial {
                headers[.contentRange] = "bytes \(download.range.lowerBound)-\(download.range.upperBound - 1)/\(download.size)"
            }
            return Response(
                status: partial ? .partialContent : .ok, headers: headers,
                body: ResponseBody(contentLength: Int(download.range.count)) { writer in
                    try await download.write { try await writer.write($0) }
                    try await writer.finish(nil)
                })
        }
    }
}

extension ConclaveRequestContext {
    var fileID: FileID { get throws { try parameter("file", as: "a file id", FileID.init) } }
}
