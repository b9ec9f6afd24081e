import ConclaveProtocol
import Foundation
import Testing

/// RFC 3339 §5.6 `date-time`, as the API reads it (`since`, every time in a body).
@Suite struct TimestampTests {
    @Test("Every RFC 3339 date-time reads as its instant; what the server writes reads back as the same Date")
    func valid() throws {
        let noon = try #require(ConclaveJSON.parseTimestamp("2026-11-27T12:00:00Z"))
        #expect(noon.timeIntervalSince1970 == 1_795_780_800)
        #expect(ConclaveJSON.parseTimestamp("2026-11-27t12:00:00z") == noon)
        #expect(ConclaveJSON.parseTimestamp("2026-11-28T10:42:00+22:42") == noon)
        #expect(ConclaveJSON.parseTimestamp("2026-11-26T12:01:00-23:59") == noon)
        #expect(ConclaveJSON.parseTimestamp("2026-11-27T12:00:00-00:00") == noon)
        #expect(ConclaveJSON.parseTimestamp("2026-11-27T12:00:00.5Z") == noon.addingTimeInterval(0.5))
        #expect(ConclaveJSON.parseTimestamp("2024-02-29T00:00:00Z") != nil)
        #expect(ConclaveJSON.parseTimestamp("1969-12-31T23:59:59Z")?.timeIntervalSince1970 == -1)
        for millis: Int64 in [0, 1, 999, 1_796_212_800_123, 1_796_212_800_234, 1_700_000_000_001] {
            let date = Date(timeIntervalSince1970: Double(millis) / 1000)
            #expect(ConclaveJSON.parseTimestamp(ConclaveJSON.formatTimestamp(date)) == date)
        }
    }

    /// Foundation's formatter counts days before October 1582 in the Julian
    /// calendar; RFC 3339 (and ``ConclaveJSON/parseTimestamp(_:)``) in the
    /// proleptic Gregorian one: earlier times are only read back.
    @Test(
        "The server writes every time of years 1583–9999 as Foundation's ISO 8601 formatter does, with milliseconds, and every time of 0000–9999 reads back"
    )
    func writtenAsFoundationWrites() {
        var generator = SystemRandomNumberGenerator()
        let edges: [Int64] = [
            -62_167_219_200_000, -12_212_553_600_000, -1, 0, 951_782_400_000, 4_107_542_400_000, 253_402_300_799_999,
        ]
        for millis in edges + (0..<5_000).map({ _ in Int64.random(in: -62_167_219_200_000...253_402_300_799_999, using: &generator) }) {
            let fraction = ((millis % 1000) + 1000) % 1000
            let whole = Date.ISO8601FormatStyle().format(Date(timeIntervalSince1970: Double((millis - fraction) / 1000)))
            let expected = whole.dropLast() + "." + String(String(1000 + fraction).dropFirst()) + "Z"
            let date = Date(timeIntervalSince1970: Double(millis) / 1000)
            if millis >= -12_212_553_600_000 { #expect(ConclaveJSON.formatTimestamp(date) == expected, "\(millis)") }
            let read = ConclaveJSON.parseTimestamp(ConclaveJSON.formatTimestamp(date)).map {
                Int64(($0.timeIntervalSince1970 * 1000).rounded())
            }
            #expect(read == millis)
        }
    }

    @Test("Anything else is refused")
    func invalid() {
        for text in [
            "", "2026-11-27", "2026-11-27T12:00Z", "2026-11-27T12:00:00", "2026-11-27T12:00:00+00:60", "2026-11-27T12:00:00+24:00",
            "2026-11-27T24:00:00Z", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-27T12:00:00.Z", "2026-11-27 12:00:00Z",
            "2026-11-27T12:00:00Z ", "+2026-11-27T12:00:00Z", "2026-W48-5T12:00:00Z", "2026-11-27T12:00:00+0100",
        ] {
            #expect(ConclaveJSON.parseTimestamp(text) == nil, "\(text)")
        }
    }
}
