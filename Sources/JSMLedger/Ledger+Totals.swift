import JSMDomain

extension Ledger {
    /// A migration's totals per category and per project, and the decided identities that lack a
    /// mapping row: everything the reconciliation invariant compares.
    public func totals(migrationId: String) async throws(LedgerError) -> LedgerTotals {
        let operation = "totals"
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            var byCategory: [ScopeCategory: OutcomeTally] = [:]
            for category in ScopeCategory.allCases { byCategory[category] = OutcomeTally() }
            // One pass over the scope: the counts and the decided identities without a mapping row
            // (each a full scan of a million rows on a large migration, so not two).
            var unmapped = 0
            for row in try await session.query(
                """
                SELECT s.identity_class, s.outcome, COUNT(*),
                    SUM(CASE WHEN s.outcome IS NOT NULL AND m.server_user_key IS NULL THEN 1 ELSE 0 END)
                FROM ledger_scope s
                JOIN ledger_migrations g ON g.migration_id = s.migration_id
                LEFT JOIN ledger_mappings m ON m.site_id = g.site_id AND m.server_user_key = s.user_key
                WHERE s.migration_id = $1
                GROUP BY s.identity_class, s.outcome
                """, [.text(migrationId)])
            {
                unmapped += Int(try row.int(3))
                guard let category = ScopeCategory(rawValue: try row.text(0)) else { continue }
                byCategory[category, default: OutcomeTally()].add(
                    outcome: row.optionalText(1).flatMap(Outcome.init(rawValue:)), count: Int(try row.int(2)))
            }
            var byProject: [Int64: [ScopeCategory: OutcomeTally]] = [:]
            for row in try await session.query(
                "SELECT project_id FROM ledger_projects WHERE migration_id = $1", [.text(migrationId)])
            {
                byProject[try row.int(0)] = Dictionary(
                    uniqueKeysWithValues: ScopeCategory.allCases.map { ($0, OutcomeTally()) })
            }
            for row in try await session.query(
                """
                SELECT r.project_id, s.identity_class, s.outcome, COUNT(*)
                FROM ledger_project_references r
                JOIN ledger_scope s ON s.migration_id = r.migration_id AND s.user_key = r.user_key
                WHERE r.migration_id = $1 GROUP BY r.project_id, s.identity_class, s.outcome
                """, [.text(migrationId)])
            {
                guard let category = ScopeCategory(rawValue: try row.text(1)) else { continue }
                byProject[try row.int(0), default: [:]][category, default: OutcomeTally()].add(
                    outcome: row.optionalText(2).flatMap(Outcome.init(rawValue:)), count: Int(try row.int(3)))
            }
            return LedgerTotals(byCategory: byCategory, byProject: byProject, decidedWithoutMapping: unmapped)
        }
    }

    /// Names what keeps the invariant from holding: batches not ended (neither done nor discarded
    /// by an operator), undecided identities with
    /// the batch they wait in, decided identities without a mapping row; each list at most `limit`.
    ///
    /// - Parameter totals: the migration's totals, when the caller has just read them: the scans
    ///   for undecided and unmapped identities are skipped when they count none.
    public func missingWork(migrationId: String, limit: Int = 100, totals: LedgerTotals? = nil)
        async throws(LedgerError) -> MissingWork
    {
        let operation = "missingWork"
        let lookForUndecided = totals.map { $0.overall.pending != 0 } ?? true
        let lookForUnmapped = totals.map { $0.decidedWithoutMapping != 0 } ?? true
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            let batches = try await session.query(
                """
                SELECT \(Ledger.batchColumns) FROM ledger_batches
                WHERE migration_id = $1 AND state NOT IN ('done', 'discarded') ORDER BY method, sequence LIMIT $2
                """, [.text(migrationId), .int(Int64(limit))]
            ).map { row throws in try Ledger.batch(row, operation: operation) }
            var undecided: [UndecidedIdentity] = []
            if lookForUndecided {
                undecided = try await session.query(
                    """
                    SELECT user_key, batch_id FROM ledger_scope WHERE migration_id = $1 AND outcome IS NULL
                    ORDER BY batch_sequence, user_key LIMIT $2
                    """, [.text(migrationId), .int(Int64(limit))]
                ).map { row throws in UndecidedIdentity(userKey: try row.text(0), batchId: row.optionalText(1)) }
            }
            var unmapped: [String] = []
            if lookForUnmapped {
                unmapped = try await session.query(
                    """
                    SELECT s.user_key FROM ledger_scope s
                    JOIN ledger_migrations g ON g.migration_id = s.migration_id
                    LEFT JOIN ledger_mappings m ON m.site_id = g.site_id AND m.server_user_key = s.user_key
                    WHERE s.migration_id = $1 AND s.outcome IS NOT NULL AND m.server_user_key IS NULL
                    ORDER BY s.user_key LIMIT $2
                    """, [.text(migrationId), .int(Int64(limit))]
                ).map { row throws in try row.text(0) }
            }
            return MissingWork(batches: batches, undecided: undecided, unmapped: unmapped)
        }
    }
}
