import Synchronization

/// Counters of what the adapter did, safe to read from any task, shaped for a metrics exporter.
///
/// Throttled answers (429/503) are counted apart from failures on purpose: at scale they are the
/// site pacing the migration, not something an operator must act on.
public final class CloudSiteMetrics: Sendable {
    private let requestCount = Atomic<Int>(0)
    private let throttledCount = Atomic<Int>(0)
    private let retriableFailureCount = Atomic<Int>(0)
    private let permanentFailureCount = Atomic<Int>(0)
    private let createdCount = Atomic<Int>(0)
    private let linkedCount = Atomic<Int>(0)

    /// Starts all counters at zero.
    public init() {}

    /// A consistent-enough reading of all counters.
    public var snapshot: Snapshot {
        Snapshot(
            requests: requestCount.load(ordering: .relaxed),
            throttledResponses: throttledCount.load(ordering: .relaxed),
            retriableFailures: retriableFailureCount.load(ordering: .relaxed),
            permanentFailures: permanentFailureCount.load(ordering: .relaxed),
            accountsCreated: createdCount.load(ordering: .relaxed),
            accountsLinked: linkedCount.load(ordering: .relaxed)
        )
    }

    func recordRequest() { requestCount.add(1, ordering: .relaxed) }
    func recordThrottled() { throttledCount.add(1, ordering: .relaxed) }
    func recordFailure(_ error: CloudSiteError) {
        if error.isRetriable {
            retriableFailureCount.add(1, ordering: .relaxed)
        } else {
            permanentFailureCount.add(1, ordering: .relaxed)
        }
    }
    func recordProvisioning(_ provisioning: AccountProvisioning) {
        if provisioning.isCreated {
            createdCount.add(1, ordering: .relaxed)
        } else {
            linkedCount.add(1, ordering: .relaxed)
        }
    }

    /// The counters at one moment.
    public struct Snapshot: Sendable, Hashable {
        /// HTTP requests sent, retries included.
        public var requests: Int
        /// 429 and 503 answers waited out (not failures).
        public var throttledResponses: Int
        /// Calls that failed with a retriable error (site down, timeout, 5xx, throttled too long).
        public var retriableFailures: Int
        /// Calls that failed for good (400, 401, 403, 404, unexpected answers).
        public var permanentFailures: Int
        /// Accounts the site made.
        public var accountsCreated: Int
        /// Accounts linked because they already existed.
        public var accountsLinked: Int

        /// All failed calls, retriable or not.
        public var failures: Int { retriableFailures + permanentFailures }
    }
}
