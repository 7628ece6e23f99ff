import JSMDomain

/// A selected project as the ledger recorded it when the migration was created: what the report's
/// per-project table names (key and name) beside the project's totals.
public struct LedgerProject: Sendable, Hashable {
    /// The Jira project id.
    public let id: Int64
    /// The project key, e.g. `HELP`.
    public let key: String
    /// The project name.
    public let name: String
    /// Whether it is a service project (its requests reference customers).
    public let isServiceProject: Bool
    /// Whether its expansion has been recorded.
    public let isExpanded: Bool
}

/// One in-scope identity that an operator should look at: rejected, merged into another account,
/// given a second account, mapped to the Former container, or disabled on the server.
public struct AttentionRecord: Sendable, Hashable {
    /// The server user key (never the email: reports are shared more widely than the source).
    public let userKey: String
    /// Its reconciliation category.
    public let category: ScopeCategory
    /// How it ended.
    public let outcome: Outcome
    /// Its report flags.
    public let flags: OutcomeFlags
    /// Why it got no account of its own, when the mapping row says so.
    public let reason: String?
    /// The cloud account it maps to, when there is one.
    public let accountId: String?
    /// The batch that decided it.
    public let batchId: String?
}

/// One in-scope identity's user key and category, for recounts that compare key sets.
public struct ScopeEntry: Sendable, Hashable {
    /// The server user key.
    public let userKey: String
    /// The category it was claimed as.
    public let category: ScopeCategory
}

extension Ledger {
    /// The migration's selected projects with key and name, by key: the rows of the report's
    /// per-project table.
    public func projects(migrationId: String) async throws(LedgerError) -> [LedgerProject] {
        let operation = "projects"
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            return try await session.query(
                """
                SELECT project_id, project_key, project_name, service_project, expanded_at_ms
                FROM ledger_projects WHERE migration_id = $1 ORDER BY project_key, project_id
                """, [.text(migrationId)]
            ).map { row throws in
                LedgerProject(
                    id: try row.int(0), key: try row.text(1), name: try row.text(2),
                    isServiceProject: try row.int(3) != 0,
                    isExpanded: row.optionalInt(4) != nil)
            }
        }
    }

    /// How many of the migration's batches of `method` (every method when `nil`) are in each
    /// state: the report's "batches done of total" without reading the batch rows.
    public func batchStateCounts(migrationId: String, method: String? = LedgerBatch.identityMethod)
        async throws(LedgerError) -> [BatchState: Int]
    {
        let operation = "batchStateCounts"
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            var counts: [BatchState: Int] = [:]
            for state in BatchState.allCases { counts[state] = 0 }
            for row in try await session.query(
                """
                SELECT state, COUNT(*) FROM ledger_batches
                WHERE migration_id = $1 AND ($2 = '' OR method = $2) GROUP BY state
                """, [.text(migrationId), .text(method ?? "")])
            {
                guard let state = BatchState(rawValue: try row.text(0)) else { continue }
                counts[state] = Int(try row.int(1))
            }
            return counts
        }
    }

    /// The migration's identities that need an operator's attention, by user key, after
    /// `afterUserKey`, at most `limit`: outcome `rejected` or `former`, or flagged `merged`,
    /// `second_account` or `disabled`. Read page by page so a large migration is never held in memory.
    public func attentionRecords(migrationId: String, afterUserKey: String? = nil, limit: Int = 1000)
        async throws(LedgerError) -> [AttentionRecord]
    {
        let operation = "attentionRecords"
        let flagMask = OutcomeFlags([.merged, .secondAccount, .disabled]).rawValue
        return try await database.transaction(operation, readOnly: true) { session in
            try await session.query(
                """
                SELECT s.user_key, s.identity_class, s.outcome, s.flags, m.reason, m.cloud_account_id, s.batch_id
                FROM ledger_scope s
                JOIN ledger_migrations g ON g.migration_id = s.migration_id
                LEFT JOIN ledger_mappings m ON m.site_id = g.site_id AND m.server_user_key = s.user_key
                WHERE s.migration_id = $1 AND s.user_key > $2 AND s.outcome IS NOT NULL
                  AND (s.outcome IN ('rejected', 'former') OR (COALESCE(s.flags, 0) & $4) <> 0)
                ORDER BY s.user_key LIMIT $3
                """, [.text(migrationId), .text(afterUserKey ?? ""), .int(Int64(limit)), .int(Int64(flagMask))]
            ).map { row throws in
                guard let category = ScopeCategory(rawValue: try row.text(1)),
                    let outcome = Outcome(rawValue: try row.text(2))
                else {
                    throw LedgerError(.database, operation: operation, "a scope row has an unknown class or outcome")
                }
                return AttentionRecord(
                    userKey: try row.text(0), category: category, outcome: outcome,
                    flags: OutcomeFlags(rawValue: UInt8(truncatingIfNeeded: row.optionalInt(3) ?? 0)),
                    reason: row.optionalText(4), accountId: row.optionalText(5), batchId: row.optionalText(6))
            }
        }
    }

    /// The migration's in-scope user keys with their category, by user key, after `afterUserKey`,
    /// at most `limit`: what `verify` compares with its own recount from the source.
    public func scopeEntries(migrationId: String, afterUserKey: String? = nil, limit: Int = 10_000)
        async throws(LedgerError) -> [ScopeEntry]
    {
        let operation = "scopeEntries"
        return try await database.transaction(operation, readOnly: true) { session in
            try await session.query(
                """
                SELECT user_key, identity_class FROM ledger_scope WHERE migration_id = $1 AND user_key > $2
                ORDER BY user_key LIMIT $3
                """, [.text(migrationId), .text(afterUserKey ?? ""), .int(Int64(limit))]
            ).map { row throws in
                guard let category = ScopeCategory(rawValue: try row.text(1)) else {
                    throw LedgerError(.database, operation: operation, "a scope row has an unknown class")
                }
                return ScopeEntry(userKey: try row.text(0), category: category)
            }
        }
    }

    /// The mapping rows this migration set on its site that hold an account (`created` or
    /// `linked`), by user key, after `afterUserKey`, at most `limit`: the accounts `verify` looks
    /// for on the site.
    public func accountMappings(migrationId: String, afterUserKey: String? = nil, limit: Int = 10_000)
        async throws(LedgerError) -> [MappingRecord]
    {
        let operation = "accountMappings"
        return try await database.transaction(operation, readOnly: true) { session in
            try await session.query(
                """
                SELECT m.site_id, m.server_user_key, m.cloud_account_id, m.account_type, m.outcome, m.flags, m.reason,
                    m.migration_id, m.batch_id
                FROM ledger_mappings m JOIN ledger_migrations g ON g.site_id = m.site_id
                WHERE g.migration_id = $1 AND m.migration_id = $1 AND m.outcome IN ('created', 'linked')
                  AND m.server_user_key > $2
                ORDER BY m.server_user_key LIMIT $3
                """, [.text(migrationId), .text(afterUserKey ?? ""), .int(Int64(limit))]
            ).map { row throws in
                guard let outcome = Outcome(rawValue: try row.text(4)) else {
                    throw LedgerError(.database, operation: operation, "a mapping row has an unknown outcome")
                }
                return MappingRecord(
                    siteId: try row.text(0), userKey: try row.text(1), accountId: row.optionalText(2),
                    accountType: row.optionalText(3).flatMap(CloudAccountType.init(rawValue:)), outcome: outcome,
                    flags: OutcomeFlags(rawValue: UInt8(truncatingIfNeeded: try row.int(5))),
                    reason: row.optionalText(6), migrationId: try row.text(7), batchId: try row.text(8))
            }
        }
    }

    /// Number of mapping rows this migration set on its site that hold an account: decides
    /// whether `verify` may look each one up on a site without a listing endpoint.
    public func accountMappingCount(migrationId: String) async throws(LedgerError) -> Int {
        let operation = "accountMappingCount"
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            return Int(
                try await session.first(
                    """
                    SELECT COUNT(*) FROM ledger_mappings m JOIN ledger_migrations g ON g.site_id = m.site_id
                    WHERE g.migration_id = $1 AND m.migration_id = $1 AND m.outcome IN ('created', 'linked')
                    """, [.text(migrationId)])?.int(0) ?? 0)
        }
    }
}

/// Where a migration's batches stand, for `status`: per state the batches and their items (every
/// method), and what was completed recently, for a rate and an ETA.
public struct MigrationProgress: Sendable, Hashable {
    /// Batches per state.
    public let batches: [BatchState: Int]
    /// Items (identities, groups, memberships) per batch state.
    public let items: [BatchState: Int]
    /// Batches completed since the window's start.
    public let recentBatches: Int
    /// Items of those batches.
    public let recentItems: Int
    /// The window, in milliseconds.
    public let windowMilliseconds: Int64
    /// Pending batches whose last attempt failed (waiting in a delayed-retry queue, or redelivered).
    public let retrying: Int
}

extension Ledger {
    /// A migration's batches and items per state, and those completed in the last `window`
    /// milliseconds: two grouped counts on the batches' index, cheap enough for `status --watch`.
    public func progress(migrationId: String, window: Int64 = 60_000) async throws(LedgerError) -> MigrationProgress {
        let operation = "progress"
        let since = now() - window
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            var batches: [BatchState: Int] = [:]
            var items: [BatchState: Int] = [:]
            for state in BatchState.allCases {
                batches[state] = 0
                items[state] = 0
            }
            for row in try await session.query(
                """
                SELECT state, COUNT(*), COALESCE(SUM(identity_count), 0) FROM ledger_batches
                WHERE migration_id = $1 GROUP BY state
                """, [.text(migrationId)])
            {
                guard let state = BatchState(rawValue: try row.text(0)) else { continue }
                batches[state] = Int(try row.int(1))
                items[state] = Int(try row.int(2))
            }
            let recent = try await session.first(
                """
                SELECT COUNT(*), COALESCE(SUM(identity_count), 0) FROM ledger_batches
                WHERE migration_id = $1 AND state = 'done' AND completed_at_ms >= $2
                """, [.text(migrationId), .int(since)])
            let retrying = try await session.first(
                """
                SELECT COUNT(*) FROM ledger_batches
                WHERE migration_id = $1 AND state = 'pending' AND last_error IS NOT NULL
                """, [.text(migrationId)])
            return MigrationProgress(
                batches: batches, items: items, recentBatches: Int(try recent?.int(0) ?? 0),
                recentItems: Int(try recent?.int(1) ?? 0), windowMilliseconds: window,
                retrying: Int(try retrying?.int(0) ?? 0))
        }
    }
}
