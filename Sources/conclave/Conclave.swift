import ArgumentParser
import ConclaveProtocol
import Foundation

@main
struct Conclave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conclave",
        abstract: "Conclave: managed, end-to-end encrypted messaging (MLS, RFC 9420).",
        discussion: """
            Run a network with `conclave server init` and `conclave server run`, manage it with \
            `conclave admin`, and talk with `conclave login`, `send`, `room`, `receive` and `chat`. \
            `conclave demo` shows everything working on a throwaway network.
            """,
        subcommands: [
            ServerCommand.self, AdminCommand.self, LoginCommand.self, SendCommand.self, RoomCommand.self, ReceiveCommand.self,
            ChatCommand.self, DemoCommand.self, MLSCommand.self,
        ]
    )

    static func main() async {
        await Self.main(ProfileArguments.reordered(Array(CommandLine.arguments.dropFirst())))
    }
}

struct MLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mls",
        abstract: "Tools for the MLS (RFC 9420) library.",
        subcommands: [VectorsCommand.self]
    )
}

/// Options every device command takes.
struct ProfileOptions: ParsableArguments {
    @Option(name: .long, help: "The profile directory: one device's state (default: $CONCLAVE_PROFILE or ~/.conclave).")
    var profile: String?

    var directory: String {
        if let profile { return profile }
        if let fromEnvironment = ProcessInfo.processInfo.environment["CONCLAVE_PROFILE"], !fromEnvironment.isEmpty { return fromEnvironment }
        return FileManager.default.homeDirectoryForCurrentUser.path + "/.conclave"
    }
}

/// `conclave --profile DIR send …` reads as `conclave send --profile DIR …`:
/// the profile option may come before the command, as the README writes it.
enum ProfileArguments {
    static func reordered(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var rest = arguments[...]
        while let first = rest.first, first == "--profile" || first.hasPrefix("--profile=") {
            leading.append(first)
            rest = rest.dropFirst()
            if first == "--profile", let value = rest.first {
                leading.append(value)
                rest = rest.dropFirst()
            }
        }
        guard !leading.isEmpty, let command = rest.first else { return arguments }
        // Keep nested command names (room create, admin user add) ahead of the option.
        var names = [command]
        rest = rest.dropFirst()
        let nested: Set<String> = ["room"]
        if nested.contains(command), let sub = rest.first, !sub.hasPrefix("-") {
            names.append(sub)
            rest = rest.dropFirst()
        }
        return names + leading + Array(rest)
    }
}

/// Reads a secret from a file, without its trailing newline.
func readSecretFile(_ path: String, what: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the \(what) file \(path)") }
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
    guard !text.isEmpty else { throw ValidationError("the \(what) file \(path) is empty") }
    return text
}

/// Prints one JSON object per line.
func printJSON(_ value: some Encodable) throws {
    print(String(decoding: try ConclaveJSON.encoder().encode(value), as: UTF8.self))
}
