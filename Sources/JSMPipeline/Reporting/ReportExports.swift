import JSMDomain
import JSMLedger

/// The CSV files `report` writes beside its summary, read from the ledger page by page so that a
/// migration of millions of identities never sits in memory.
public enum ReportExports {
    /// Rows read from the ledger per query.
    public static let pageSize = 5_000
    /// Columns of the requires-attention CSV.
    ///
    /// `key` is the server user key of an identity (category `customers`, `licensed_users` or
    /// `formers`), the name of a group (category `group`: reused, a permission-escalation risk;
    /// created again, flag `recreated`, in place of a group the site deleted; or rejected) or
    /// `group/user_key` of a rejected membership (category `membership`); `cloud_id` is the cloud
    /// account or group.
    public static let attentionHeader = [
        "key", "category", "outcome", "flags", "reason", "cloud_id", "batch_id",
    ]
    /// Columns of the mapping export.
    public static let mappingHeader = ["server_user_key", "cloud_account_id", "account_type", "outcome", "flags"]

    /// Writes the requires-attention CSV: every rejected, former, merged, second-account or
    /// disabled identity of the migration, by user key (never the email), then every reused,
    /// re-created or rejected group and rejected membership. Flags are joined with
    /// `|`. Returns the number of data rows written.
    @discardableResult
    public static func writeAttention(ledger: Ledger, migrationId: String, to path: String) async throws -> Int {
        guard try await ledger.migration(migrationId) != nil else {
            throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
        }
        let writer = try ReportFileWriter(path: path)
        do {
            try writer.write(attentionHeader)
            var after: String? = nil
            var written = 0
            // Bounded: each page starts after the last key of the previous one, and a short page ends it.
            while true {
                let page = try await ledger.attentionRecords(
                    migrationId: migrationId, afterUserKey: after, limit: pageSize)
                for record in page {
                    try writer.write([
                        record.userKey, label(record.category), record.outcome.rawValue,
                        record.flags.names.joined(separator: "|"), record.reason ?? "", record.accountId ?? "",
                        record.batchId ?? "",
                    ])
                }
                written += page.count
                guard page.count == pageSize, let last = page.last?.userKey else { break }
                after = last
            }
            for record in try await ledger.groupAttentionRecords(migrationId: migrationId) {
                let risk = record.outcome == GroupOutcomeKind.reused.rawValue
                let recreated = record.kind == .group && record.outcome == GroupOutcomeKind.created.rawValue
                let flags = (recreated ? ["recreated"] : []) + (risk ? ["permission_escalation_risk"] : [])
                try writer.write([
                    record.key, record.kind.rawValue, record.outcome, flags.joined(separator: "|"),
                    risk || recreated ? "\(record.detail); members added: \(record.membersAdded)" : record.detail,
                    record.cloudGroupId ?? "", record.batchId,
                ])
                written += 1
            }
            try writer.finish()
            return written
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Writes the mapping export of the migration's site: every `server user key -> cloud
    /// account` row (of this and earlier migrations on the site: a data migration relinks with
    /// all of them), by user key. Returns the number of data rows written.
    @discardableResult
    public static func writeMappings(ledger: Ledger, migrationId: String, to path: String) async throws -> Int {
        guard let migration = try await ledger.migration(migrationId) else {
            throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
        }
        let writer = try ReportFileWriter(path: path)
        do {
            try writer.write(mappingHeader)
            var after: String? = nil
            var written = 0
            // Bounded: each page starts after the last key of the previous one, and a short page ends it.
            while true {
                let page = try await ledger.mappings(siteId: migration.siteId, afterUserKey: after, limit: pageSize)
                for mapping in page {
                    try writer.write([
                        mapping.userKey, mapping.accountId ?? "", mapping.accountType?.rawValue ?? "",
                        mapping.outcome.rawValue, mapping.flags.names.joined(separator: "|"),
                    ])
                }
                written += page.count
                guard page.count == pageSize, let last = page.last?.userKey else { break }
                after = last
            }
            try writer.finish()
            return written
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// The report's name of a category.
    static func label(_ category: ScopeCategory) -> String {
        MigrationReport.categories.first { $0.category == category }?.label ?? category.rawValue
    }
}
