/// Durations as people type them: `30s`, `15m`, `2h`, `7d` (a whole number
/// and one unit).
public enum DurationText {
    /// Seconds, or nil when the text is not a duration of at most ten years.
    public static func seconds(_ text: String) -> Int64? {
        guard let unit = text.last, let value = Int64(text.dropLast()), value > 0 else { return nil }
        let scale: Int64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow, seconds <= 10 * 365 * 86_400 else { return nil }
        return seconds
    }
}

extension DurationText {
    /// The largest whole unit that states `seconds` exactly: `7d`, `36h`,
    /// `90s`; `0s` for zero.
    public static func format(_ seconds: UInt64) -> String {
        for (unit, scale) in [("d", UInt64(86_400)), ("h", 3600), ("m", 60)] where seconds >= scale && seconds.isMultiple(of: scale) {
            return "\(seconds / scale)\(unit)"
        }
        return "\(seconds)s"
    }
}
