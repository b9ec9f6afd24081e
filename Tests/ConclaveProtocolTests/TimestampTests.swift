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
