import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import MLSInteropService

/// Serves the MLS interop harness's MLSClient service over plaintext HTTP/2.
@main
struct MLSInteropClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mls-interop-client",
        abstract: "Conclave's client for the MLS working group's interop test harness (gRPC service mls_client.MLSClient).",
        discussion: """
            Implemented RPCs: \(MLSClientService.implementedRPCs.joined(separator: ", ")). \
            Every other RPC answers with gRPC status UNIMPLEMENTED.
            """
    )

    @Option(help: "The address to listen on: an IPv4 or IPv6 literal.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on (0 picks a free one).")
    var port = 50051

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
    }

    func run() async throws {
        let address: GRPCNIOTransportCore.SocketAddress = host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        let server = GRPCServer(
            transport: .http2NIOPosix(address: address, transportSecurity: .plaintext),
            services: [MLSClientService()]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            if let listening = try await server.listeningAddress {
                // Unbuffered, so that a harness script reading the pipe sees it at once.
                FileHandle.standardOutput.write(Data("mls-interop-client (\(InteropClient.name)) listening on \(listening)\n".utf8))
            }
        }
    }
}
