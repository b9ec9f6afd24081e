import GRPCCore
import MLS
import MLSCodec

/// Why a request failed, before it becomes a gRPC status.
public struct InteropFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The request is malformed or the MLS library refused it.
        case invalidArgument
        /// No state or transaction has the given id.
        case notFound
        /// The state cannot do this now (removed from its group, no pending commit).
        case failedPrecondition
        /// The RPC is not implemented by this client.
        case unimplemented
        /// No more ids can be handed out.
        case resourceExhausted
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func invalid(_ message: String) -> InteropFailure { InteropFailure(.invalidArgument, message) }
}

extension RPCError {
    /// The status a failed request answers with: the RPC's name and a
    /// description of what went wrong (never secret material: MLSError and
    /// CodecError descriptions hold no input bytes).
    init(rpc: String, failure error: any Error) {
        switch error {
        case let error as RPCError:
            self = error
        case let failure as InteropFailure:
            let code: RPCError.Code =
                switch failure.kind {
                case .invalidArgument: .invalidArgument
                case .notFound: .notFound
                case .failedPrecondition: .failedPrecondition
                case .unimplemented: .unimplemented
                case .resourceExhausted: .resourceExhausted
                }
            self.init(code: code, message: "\(rpc): \(failure.message)")
        case let error as MLSError:
            self.init(code: .invalidArgument, message: "\(rpc): \(error.description)")
        case let error as CodecError:
            self.init(code: .invalidArgument, message: "\(rpc): malformed input: \(error.description)")
        default:
            self.init(code: .internalError, message: "\(rpc): unexpected failure: \(String(describing: type(of: error)))")
        }
    }
}
