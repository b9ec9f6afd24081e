import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "Your devices: list them, approve a new one, remove one.",
        discussion: """
            A new device of a user who has a device already waits for approval: `conclave login` on it prints an \
            approval code; run `conclave device approve CODE` on one of your approved devices. Until then it is in no \
            conversation and reads nothing.
            """,
        subcommands: [DeviceListCommand.self, DeviceApproveCommand.self, DeviceRemoveCommand.self])
}

struct DeviceListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Your devices, approved or waiting for approval.")
    @OptionGroup var options: ProfileOptions
    @Flag(name: .long, help: "Print one JSON object per line.") var json = false

    func run() async throws {
        try await options.withClient(sync: false) { client in
            let code = await client.approvalCode
            for device in try await client.devices() {
                let shownCode = device.current ? code : nil
                if json {
                    try printJSON(DeviceLine(device, approvalCode: shownCode))
                } else {
                    let state = device.pending ? "waiting for approval" : "approved"
                    let mark = device.current ? " (this device\(shownCode.map { ", approval code \($0)" } ?? ""))" : ""
                    print("\(device.id)  \(device.name)  \(state)  since \(EventPrinter.time(device.createdAt))\(mark)")
                }
            }
        }
    }
}

struct DeviceLine: Encodable {
    let id: DeviceID
    let name: String
    let pending: Bool
    let current: Bool
    let createdAt: Date
    let approvalCode: String?

    init(_ device: OwnDevice, approvalCode: String?) {
        id = device.id
        name = device.name
        pending = device.pending
        current = device.current
        createdAt = device.createdAt
        self.approvalCode = approvalCode
    }
}

struct DeviceApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve", abstract: "Approve a new device of yours by the code it printed at login.",
        discussion: """
            The code binds the new device's keys: if the server changed them, no device matches and nothing is \
            approved. The new device receives your identity key, sealed to it, and joins your conversations.
            """)
    @OptionGroup var options: ProfileOptions
    @Argument(help: "The approval code the new device printed (XXXXX-XXXXX-XXXXX-XXXXX).") var code: String

    func run() async throws {
        try await options.withClient(sync: false) { client in
            let device = try await client.approveDevice(code: code)
            print("approved device \(device.id) (\(device.name))")
        }
    }
}

struct DeviceRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Sign one of your other devices out: it leaves every conversation.")
    @OptionGroup var options: ProfileOptions
    @Argument(help: "The device id (from `device list`).") var device: String

    func run() async throws {
        guard let id = DeviceID(device) else { throw ValidationError("a device id is 16 hex digits") }
        try await options.withClient(sync: false) { client in
            try await client.removeDevice(id)
            print("removed device \(id)")
        }
    }
}

struct SafetyNumberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safety-number", abstract: "The safety number of you and a contact: compare it with theirs, in person or by call.",
        discussion: "Both sides see the same 60 digits when each has the other's real identity key. Then run `conclave verify`.")
    @OptionGroup var options: ProfileOptions
    @Argument(help: "USER@DOMAIN") var user: String

    func run() async throws {
        guard let address = UserAddress(user) else { throw ValidationError("USER must be NAME@DOMAIN") }
        try await options.withClient(sync: false) { client in
            let number = try await client.safetyNumber(with: address)
            let groups = number.split(separator: " ")
            print(
                stride(from: 0, to: groups.count, by: 4).map { groups[$0..<min($0 + 4, groups.count)].joined(separator: " ") }.joined(
                    separator: "\n"))
            if try await client.isVerified(address) { print("(verified)") }
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Mark a contact verified when NUMBER is your safety number (exit 1 otherwise).",
        discussion: "After this, if the contact's identity key changes, nothing is sent to them until you verify again.")
    @OptionGroup var options: ProfileOptions
    @Argument(help: "USER@DOMAIN") var user: String
    @Argument(parsing: .remaining, help: "The 60 digits (spaces do not matter).") var number: [String]

    func run() async throws {
        guard let address = UserAddress(user) else { throw ValidationError("USER must be NAME@DOMAIN") }
        try await options.withClient(sync: false) { client in
            try await client.verify(address, safetyNumber: number.joined(separator: " "))
            print("\(address) verified")
        }
    }
}
