import JSMDomain

extension Ledger {
    /// Pending batches whose message has not been confirmed by the broker yet, in sequence order,
    /// at most `limit`: what a producer (or an aggregator that won the phase change) publishes,
    /// and what one that crashed half way publishes after its restart, without repeating the rest.
    public func unpublishedBatches(
        migrationId: String, method: String = LedgerBatch.identityMethod, limit: Int = 1000
    ) async throws(LedgerError) -> [LedgerBatch] {
        try await database.transaction("unpublishedBatches", readOnly: true) { session in
            try await session.query(
                """
                SELECT \(Ledger.batchColumns) FROM ledger_batches
                WHERE migration_id = $1 AND method = $2 AND state = 'pending' AND published_at_ms IS NULL
                ORDER BY sequence LIMIT $3
                """, [.text(migrationId), .text(method), .int(Int64(limit))]
            ).map { row throws in try Ledger.batch(row, operation: "unpublishedBatches") }
        }
    }

    /// Leases up to `limit` unpublished pending batches of `method`, in sequence order, for
    /// `lease`: until it runs out no other publisher is offered them, so the producer and an
    /// aggregator's periodic check, publishing at once, never send the same batch twice. A
    /// publisher that dies before ``markPublished(migrationId:batchIds:)`` leaves its batches to
    /// the next one once the lease has run out.
    public func leaseUnpublishedBatches(
        migrationId: String, method: String = LedgerBatch.identityMethod, limit: Int = 1000,
        lease: Duration = .seconds(60)
    ) async throws(LedgerError) -> [LedgerBatch] {
        let now = self.now()
        let until = now + lease.wholeMilliseconds
        return try await database.transaction("leaseUnpublishedBatches") { session in
            try await session.query(
                Self.leaseStatement(session.dialect),
                [.text(migrationId), .text(method), .int(Int64(limit)), .int(until), .int(now)]
            ).map { row throws in try Ledger.batch(row, operation: "leaseUnpublishedBatches") }
                .sorted { $0.sequence < $1.sequence }
        }
    }

    /// The lease of ``leaseUnpublishedBatches(migrationId:method:limit:lease:)``: `$1` migration,
    /// `$2` method, `$3` limit, `$4` lease end, `$5` now.
    ///
    /// The outer conditions repeat the inner ones: PostgreSQL re-checks them on a row another
    /// publisher leased meanwhile (the inner list is not re-read), so neither takes it twice.
    /// The inner list is computed once (``SQLDialect/isAmong(_:_:)``): as an `IN (subquery)`,
    /// PostgreSQL, with the statistics of a batch table analysed before the cut filled it, ran
    /// the subquery again for every pending batch: 2.5 s and 3.5 million buffer reads to lease
    /// 1,000 of 2,097 batches (a 1M-identity migration), growing with the square of the batches.
    static func leaseStatement(_ dialect: SQLDialect) -> String {
        let leasable = """
            SELECT batch_id FROM ledger_batches
            WHERE migration_id = $1 AND method = $2 AND state = 'pending' AND published_at_ms IS NULL
              AND (publish_lease_until_ms IS NULL OR publish_lease_until_ms <= CAST($5 AS BIGINT))
            ORDER BY sequence LIMIT $3
            """
        return """
            UPDATE ledger_batches SET publish_lease_until_ms = CAST($4 AS BIGINT)
            WHERE migration_id = $1 AND state = 'pending' AND published_at_ms IS NULL
              AND (publish_lease_until_ms IS NULL OR publish_lease_until_ms <= CAST($5 AS BIGINT))
              AND \(dialect.isAmong("batch_id", leasable))
            RETURNING \(Ledger.batchColumns)
            """
    }

    /// Records that the broker confirmed the messages of these batches.
    public func markPublished(migrationId: String, batchIds: [String]) async throws(LedgerError) {
        guard !batchIds.isEmpty else { return }
        let now = self.now()
        try await database.transaction("markPublished") { session in
            for chunk in batchIds.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("batch_id", .text)])
                for id in chunk { rows.append([.text(id)]) }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 3)
                try await session.execute(
                    with + """
                         UPDATE ledger_batches SET published_at_ms = CAST($2 AS BIGINT)
                        WHERE migration_id = $1 AND batch_id IN (SELECT batch_id FROM u)
                        """, [.text(migrationId), .int(now)] + binds)
            }
        }
    }

    /// Forgets that a batch was published, so that the next publishing pass sends it again (an
    /// operator retrying a parked batch). Returns whether the batch exists.
    @discardableResult
    public func markUnpublished(migrationId: String, batchId: String) async throws(LedgerError) -> Bool {
        try await database.transaction("markUnpublished") { session in
            try await session.query(
                """
                UPDATE ledger_batches SET published_at_ms = NULL, publish_lease_until_ms = NULL
                WHERE migration_id = $1 AND batch_id = $2 RETURNING batch_id
                """, [.text(migrationId), .text(batchId)]
            ).isEmpty == false
        }
    }

    /// Ids of the migrations in one of `states`, oldest first: what an aggregator resumes after a restart.
    public func migrationIds(inStates states: Set<MigrationState>) async throws(LedgerError) -> [String] {
        let list = states.map(\.rawValue).sorted()
        guard !list.isEmpty else { return [] }
        return try await database.transaction("migrationIds", readOnly: true) { session in
            let placeholders = list.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
            return try await session.query(
                "SELECT migration_id FROM ledger_migrations WHERE state IN (\(placeholders)) ORDER BY created_at_ms",
                list.map(SQLValue.text)
            ).map { row throws in try row.text(0) }
        }
    }
}
