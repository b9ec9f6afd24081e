import ArgumentParser

@main
struct Conclave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conclave",
        abstract: "Conclave: managed, end-to-end encrypted messaging (MLS, RFC 9420).",
        subcommands: [MLSCommand.self]
    )
}

struct MLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mls",
        abstract: "Tools for the MLS (RFC 9420) library.",
        subcommands: [VectorsCommand.self]
    )
}
