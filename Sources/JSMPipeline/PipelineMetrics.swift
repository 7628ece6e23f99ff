import JSMCloud
import JSMContracts
import Metrics

/// The metrics workers and the aggregator report through swift-metrics (exported by
/// `jsm-migrate worker|aggregator --metrics-port` in the Prometheus text format). The names and
/// labels are documented in README ("Metrics") and checked by the end-to-end tests.
public enum PipelineMetrics {
    /// Batches a worker finished handling, by `method` and `outcome`: `completed`, `replayed`
    /// (answered from the ledger: a redelivery absorbed), `parked`, `retried`, `returned` (the
    /// worker stopped; the message went back to its queue).
    public static let batches = "jsm_batches_total"
    /// Items of completed batches, by `method` and `outcome` (identities: created, linked, former,
    /// rejected, already_migrated; groups: created, reused, already_migrated, rejected; memberships:
    /// added, already_member, already_migrated, skipped, rejected).
    public static let items = "jsm_items_total"
    /// Time from delivery to ack of one batch, by `method` (a histogram).
    public static let batchDuration = "jsm_batch_duration_seconds"
    /// Replies the aggregator read, by `method` and `outcome`: `counted` or `duplicate`.
    public static let replies = "jsm_aggregator_replies_total"
    /// Migrations the aggregator finished, by `state`: `complete` or `incomplete`.
    public static let migrationsFinished = "jsm_migrations_finished_total"
    /// HTTP requests the worker's site adapter sent (retries included).
    public static let siteRequests = "jsm_site_requests_total"
    /// 429 and 503 answers the adapter waited out (pacing, not failures).
    public static let siteThrottled = "jsm_site_throttled_total"
    /// Site calls that failed, by `kind`: `retriable` or `permanent`.
    public static let siteFailures = "jsm_site_failures_total"
    /// One HTTP exchange with the site, by `method` and `path` (a histogram; the adapter records it).
    public static let siteLatency = AtlassianCloudSite.latencyMetric

    /// Every name above, for documentation and tests.
    public static let all = [
        batches, items, batchDuration, replies, migrationsFinished, siteRequests, siteThrottled, siteFailures,
        siteLatency,
    ]

    static func batch(_ method: RPCMethod, _ outcome: String) {
        Counter(label: batches, dimensions: [("method", method.rawValue), ("outcome", outcome)]).increment()
    }

    static func duration(_ method: RPCMethod, since start: ContinuousClock.Instant) {
        let elapsed = start.duration(to: .now)
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        Timer(label: batchDuration, dimensions: [("method", method.rawValue)]).recordNanoseconds(nanoseconds)
    }

    static func items(_ method: RPCMethod, _ counts: [(String, UInt64)]) {
        for (outcome, count) in counts where count > 0 {
            Counter(label: items, dimensions: [("method", method.rawValue), ("outcome", outcome)])
                .increment(by: Int64(clamping: count))
        }
    }

    static func record(_ result: JSMBatchResult) {
        let totals = result.totals
        batch(.migrateIdentities, result.replayed ? "replayed" : "completed")
        guard !result.replayed else { return }
        items(
            .migrateIdentities,
            [
                ("created", totals.created), ("linked", totals.linked), ("former", totals.former),
                ("rejected", totals.rejected), ("already_migrated", totals.alreadyMigrated),
            ])
    }

    static func record(_ result: JSMGroupBatchResult) {
        let totals = result.totals
        batch(.migrateGroups, result.replayed ? "replayed" : "completed")
        guard !result.replayed else { return }
        items(
            .migrateGroups,
            [
                ("created", totals.created), ("reused", totals.reused), ("already_migrated", totals.alreadyMigrated),
                ("rejected", totals.rejected),
            ])
    }

    static func record(_ result: JSMMembershipBatchResult) {
        let totals = result.totals
        batch(.migrateMemberships, result.replayed ? "replayed" : "completed")
        guard !result.replayed else { return }
        items(
            .migrateMemberships,
            [
                ("added", totals.added), ("already_member", totals.alreadyMember),
                ("already_migrated", totals.alreadyMigrated), ("skipped", totals.skipped),
                ("rejected", totals.rejected),
            ])
    }
}
