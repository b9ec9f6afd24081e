import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Testing

/// Key packages: ordinary ones are consumed, the last-resort one is kept.
@Suite struct KeyPackageStoreTests {
    typealias Package = (ref: [UInt8], data: [UInt8])

    static func packages(_ count: Int) -> [Package] {
        (0..<count).map { _ in (randomBytes(32), randomBytes(300)) }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func claimConsumesOrdinaryAndKeepsLastResort(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let alice = try await store.addUser("alice")
            let device = try await store.addDevice(alice)
            let ordinary = Self.packages(3)
            let lastResort = (ref: randomBytes(32), data: randomBytes(300))
            try await store.addKeyPackages(device: device, ordinary, lastResort: lastResort, now: now)
            #expect(try await store.packageCount(device) == PackageCount(available: 3, lastResort: true))

            var handedOut: [[UInt8]] = []
            for remaining in [2, 1, 0] {
                let claimed = try await store.claimKeyPackages(user: alice).packages
                #expect(claimed.map(\.device) == [device])
                handedOut += claimed.map(\.data)
                #expect(try await store.packageCount(device) == PackageCount(available: remaining, lastResort: true))
            }
            #expect(Set(handedOut) == Set(ordinary.map(\.data)))

            for _ in 0..<2 {
                let claimed = try await store.claimKeyPackages(user: alice).packages
                #expect(claimed.map(\.data) == [lastResort.data])
            }
            #expect(try await store.packageCount(device) == PackageCount(available: 0, lastResort: true))

            // A new last-resort package replaces the old one.
            let replacement = (ref: randomBytes(32), data: randomBytes(300))
            try await store.addKeyPackages(device: device, [], lastResort: replacement, now: now)
            #expect(try await store.claimKeyPackages(user: alice).packages.map(\.data) == [replacement.data])
            #expect(try await store.count("key_packages") == 1)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func claimTakesOnePerDevice(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let alice = try await store.addUser("alice")
            let bob = try await store.addUser("bob")
            let first = try await store.addDevice(alice)
            let second = try await store.addDevice(alice)
            let empty = try await store.addDevice(alice)
            let bobDevice = try await store.addDevice(bob)
            let firstPackages = Self.packages(2)
            let secondPackages = Self.packages(2)
            try await store.addKeyPackages(device: first, firstPackages, lastResort: nil, now: now)
            try await store.addKeyPackages(device: second, secondPackages, lastResort: (randomBytes(32), randomBytes(300)), now: now)
            try await store.addKeyPackages(device: bobDevice, Self.packages(1), lastResort: nil, now: now)

            let claimed = try await store.claimKeyPackages(user: alice).packages
            #expect(claimed.map(\.device) == [first, second].sorted())
            #expect(!claimed.contains { $0.device == empty })
            for entry in claimed {
                let own = entry.device == first ? firstPackages : secondPackages
                #expect(own.map(\.data).contains(entry.data))
            }
            #expect(try await store.packageCount(first) == PackageCount(available: 1, lastResort: false))
            #expect(try await store.packageCount(second) == PackageCount(available: 1, lastResort: true))
            #expect(try await store.packageCount(bobDevice) == PackageCount(available: 1, lastResort: false))
            #expect(try await store.claimKeyPackages(user: try name("nobody")).packages.isEmpty)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func duplicateReferenceRollsBackTheBatch(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let alice = try await store.addUser("alice")
            let device = try await store.addDevice(alice)
            let taken = Self.packages(1)
            try await store.addKeyPackages(device: device, taken, lastResort: nil, now: now)
            await #expect {
                try await store.addKeyPackages(device: device, Self.packages(2) + taken, lastResort: nil, now: now)
            } throws: { isConflict($0) }
            #expect(try await store.packageCount(device) == PackageCount(available: 1, lastResort: false))
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func concurrentClaimsNeverShareAPackage(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let alice = try await store.addUser("alice")
            let device = try await store.addDevice(alice)
            let packages = Self.packages(20)
            try await store.addKeyPackages(device: device, packages, lastResort: nil, now: testNow())

            let claimed = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
                for _ in 0..<20 {
                    group.addTask { try await store.claimKeyPackages(user: alice).packages.map(\.data) }
                }
                return try await group.reduce(into: [[UInt8]]()) { $0 += $1 }
            }
            #expect(claimed.count == 20)
            #expect(Set(claimed) == Set(packages.map(\.data)))
            #expect(try await store.claimKeyPackages(user: alice).packages.isEmpty)
        }
    }

    /// Each suite has its own stock and last-resort package; a claim takes
    /// one suite for all of a user's devices: the first of the requested
    /// suites every device has, else the first, naming the devices without it.
    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func claimTakesOneSuiteForEveryDevice(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let now = testNow()
            let (classical, hybrid): (UInt16, UInt16) = (0x0001, 0x004D)
            let alice = try await store.addUser("alice")
            let laptop = try await store.addDevice(alice)
            let phone = try await store.addDevice(alice)
            let laptopHybrid = Self.packages(1)
            try await store.addKeyPackages(device: laptop, Self.packages(1), lastResort: nil, now: now)
            try await store.addKeyPackages(
                device: laptop, suite: hybrid, laptopHybrid, lastResort: (randomBytes(32), randomBytes(300)), now: now)
            try await store.addKeyPackages(device: phone, Self.packages(2), lastResort: nil, now: now)
            #expect(try await store.keyPackageCount(device: laptop, suite: hybrid) == (1, true))
            #expect(try await store.packageCount(laptop) == PackageCount(available: 1, lastResort: false))

            // The phone has no hybrid package: the whole claim falls back to suite 1.
            let fallback = try await store.claimKeyPackages(user: alice, suites: [hybrid, classical])
            #expect(fallback.suite == classical && fallback.missing.isEmpty)
            #expect(fallback.packages.map(\.device) == [laptop, phone].sorted())
            #expect(try await store.keyPackageCount(device: laptop, suite: hybrid) == (1, true))

            // Hybrid only: the laptop's is taken, the phone is missing.
            let required = try await store.claimKeyPackages(user: alice, suites: [hybrid])
            #expect(required.suite == hybrid && required.missing == [phone])
            #expect(required.packages.map(\.data) == laptopHybrid.map(\.data))
            #expect(try await store.keyPackageCount(device: laptop, suite: hybrid) == (0, true))

            // Once the phone has a hybrid package, hybrid is chosen; the last-resort one is kept.
            try await store.addKeyPackages(device: phone, suite: hybrid, Self.packages(1), lastResort: nil, now: now)
            let both = try await store.claimKeyPackages(user: alice, suites: [hybrid, classical])
            #expect(both.suite == hybrid && both.missing.isEmpty && both.packages.count == 2)
            #expect(try await store.keyPackageCount(device: laptop, suite: hybrid) == (0, true))
            #expect(try await store.packageCount(phone) == PackageCount(available: 1, lastResort: false))

            // A stock limit counts per suite.
            try await store.addKeyPackages(device: phone, suite: hybrid, Self.packages(3), lastResort: nil, now: now, stock: 3)
            await #expect(throws: StoreError.self) {
                try await store.addKeyPackages(device: phone, suite: hybrid, Self.packages(1), lastResort: nil, now: now, stock: 3)
            }
            try await store.addKeyPackages(device: phone, Self.packages(2), lastResort: nil, now: now, stock: 3)
        }
    }
}
