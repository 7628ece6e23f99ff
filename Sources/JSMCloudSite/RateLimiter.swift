import Synchronization

/// A token bucket for the whole site: `rate` requests per second on average, bursts up to `burst`.
///
/// It lets the local site pace clients the way Atlassian Cloud does (429 with `Retry-After`), so the
/// adapter's backoff is exercised for real.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var refilledAt: ContinuousClock.Instant
    }

    /// Requests per second, on average.
    public let rate: Double
    /// The most requests admitted at once after a quiet period.
    public let burst: Double
    private let bucket: Mutex<Bucket>

    /// A limiter admitting `rate` requests per second; the burst defaults to a tenth of a second's worth.
    public init(rate: Double, burst: Double? = nil) {
        self.rate = max(rate, 0.001)
        self.burst = max(1, burst ?? (rate / 10).rounded(.up))
        self.bucket = Mutex(Bucket(tokens: self.burst, refilledAt: .now))
    }

    /// Takes a token: `nil` when the request may go ahead, otherwise how long until one is available.
    public func admit(now: ContinuousClock.Instant = .now) -> Duration? {
        bucket.withLock { bucket in
            let elapsed = now - bucket.refilledAt
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if seconds > 0 {
                bucket.tokens = min(burst, bucket.tokens + seconds * rate)
                bucket.refilledAt = now
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .milliseconds(Int64(((1 - bucket.tokens) / rate * 1000).rounded(.up)))
        }
    }

    /// Reads `N/s`, `N/m` or a bare `N` (per second), as the `--rate-limit` option takes it.
    public static func parseRate(_ text: String) -> Double? {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let amount = Double(first), amount > 0, amount.isFinite else { return nil }
        guard parts.count == 2 else { return amount }
        switch parts[1] {
        case "s", "sec", "second": return amount
        case "m", "min", "minute": return amount / 60
        default: return nil
        }
    }
}
