import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Talk interactively in a room or with a user.",
        discussion: "Each line you type is sent; messages arrive as they come. /quit (or end of input) leaves.")
    @OptionGroup var options: ProfileOptions
    @Argument(help: "A room (id or name) or NAME@DOMAIN.") var target: String

    func run() async throws {
        let client = try await options.open()
        let printer = EventPrinter(json: false, downloadDirectory: options.directory + "/downloads")
        for event in try await client.receive() { try await printer.show(event, with: client) }
        let conversation: Conversation
        if let peer = UserAddress(target) {
            conversation = try await client.directConversation(with: peer)
        } else {
            conversation = try await client.findConversation(target)
        }
        print("* chatting in \(conversation.title) — /quit to leave")
        let lines = StandardInputLines.stream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await event in client.events() { try await printer.show(event, with: client) }
            }
            group.addTask {
                for await line in lines {
                    if line == "/quit" { return }
                    guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
                    try await client.send(line, to: conversation.id)
                }
            }
            try await group.next()
            group.cancelAll()
        }
        await client.close()
    }
}

/// Lines of standard input, read on a dedicated thread so that blocking reads
/// never hold a thread of the concurrency pool.
enum StandardInputLines {
    static func stream() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let thread = Thread {
            while let line = readLine() { continuation.yield(line) }
            continuation.finish()
        }
        thread.start()
        return stream
    }
}
