import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import ConclaveSupport
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
        version: ConclaveVersion.current,
        subcommands: [
            ServerCommand.self, AdminCommand.self, LoginCommand.self, LogoutCommand.self, DeviceCommand.self, SendCommand.self,
            RoomCommand.self, ReceiveCommand.self, ChatCommand.self, SafetyNumberCommand.self, VerifyCommand.self, DemoCommand.self,
            TransparencyCommand.self, MLSCommand.self,
        ]
    )

    /// Parses, then runs the command; an error, also one from a command's
    /// `run`, is reported with that command's usage (not the top level's).
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot(ProfileArguments.reordered(Array(CommandLine.arguments.dropFirst())))
        } catch {
            exit(withError: error)
        }
        if command is ServerRun { MemoryAllocator.configureForServer() } else { MemoryAllocator.configureForClient() }
        do {
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                var command = command
                try command.run()
            }
        } catch {
            // A usage mistake found while running shows the command's own usage, with its full path.
            var text = "Error: " + message(for: error)
            if error is ValidationError {
                let usage = usageString(for: type(of: command))
                let path = usage.split(separator: " ").prefix { !$0.hasPrefix("-") && !$0.hasPrefix("<") && !$0.hasPrefix("[") }
                text += "\nUsage: \(usage)\n  See '\(path.joined(separator: " ")) --help' for more information."
            }
            FileHandle.standardError.write(Data((text + "\n").utf8))
            Foundation.exit(exitCode(for: error).rawValue)
        }
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
        if let fromEnvironment = ProcessInfo.processInfo.environment["CONCLAVE_PROFILE"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        // $HOME as the shell has it (a service or `sudo -E` may point it elsewhere than the password database).
        if let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty { return home + "/.conclave" }
        return FileManager.default.homeDirectoryForCurrentUser.path + "/.conclave"
    }

    /// Opens the profile of a device signed in before; a profile that does
    /// not exist is not created (a typo in --profile is an error, not a new
    /// empty directory).
    func open() async throws -> ConclaveClient {
        guard FileManager.default.fileExists(atPath: directory + "/profile.sqlite") else { throw ClientError.notSignedIn }
        return try await ConclaveClient.open(profile: directory)
    }

    /// Opens the profile, brings it up to date with the server (unless
    /// `sync` is false), runs `body`, and closes the profile whatever happens.
    /// With `creating` (login) a new profile is created, and removed again
    /// if `body` fails.
    func withClient<T>(sync: Bool = true, creating: Bool = false, _ body: (ConclaveClient) async throws -> T) async throws -> T {
        let isNew = creating && !FileManager.default.fileExists(atPath: directory)
        let client = creating ? try await ConclaveClient.open(profile: directory) : try await open()
        do {
            if sync { try await client.sync() }
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            if isNew { try? FileManager.default.removeItem(atPath: directory) }
            throw error
        }
    }
}

/// Options may come before the command, as the README writes them:
/// `conclave --profile DIR send …` and `conclave admin --server URL
/// --token-file F user add …` are read as if the options followed the
/// whole command path.
enum ProfileArguments {
    /// Commands whose next word names a subcommand.
    static let groups: Set<String> = [
        "room", "admin", "user", "group", "federation", "network", "server", "mls", "device", "sso", "scim", "token", "transparency",
    ]

    static func reordered(_ arguments: [String]) -> [String] {
        var path: [String] = []
        var options: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            if word.hasPrefix("--") {
                options.append(word)
                if !word.contains("="), index + 1 < arguments.endIndex, !ProfileArguments.isFlag(word) {
                    options.append(arguments[index + 1])
                    index += 1
                }
                index += 1
                continue
            }
            path.append(word)
            index += 1
            if !groups.contains(word) { break }
        }
        return path + options + Array(arguments[index...])
    }

    /// The options before a command that take no value.
    static func isFlag(_ option: String) -> Bool {
        ["--json", "--help", "--verbose", "--verify", "--all", "--local", "--allow-duplicate-name", "--version", "--skip-idle"].contains(
            option)
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
