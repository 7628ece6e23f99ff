import JSMDomain

extension Ledger {
    static let batchColumns = """
        migration_id, batch_id, method, sequence, state, identity_count, attempts, last_error,
        first_attempt_at_ms, last_attempt_at_ms, completed_at_ms
        """

    static func batch(_ row: SQLRow, operation: String) throws(LedgerError) -> LedgerBatch {
        guard let state = BatchState(rawValue: try row.text(4)) else {
            throw LedgerError(.database, operation: operation, "batch \(try row.text(1)) has an unknown state")
        }
        return LedgerBatch(
            migrationId: try row.text(0), batchId: try row.text(1), method: try row.text(2), sequence: try row.int(3),
            state: state, identityCount: Int(try row.int(5)), attempts: Int(try row.int(6)),
            lastError: row.optionalText(7), firstAttemptAtMilliseconds: row.optionalInt(8),
            lastAttemptAtMilliseconds: row.optionalInt(9), completedAtMilliseconds: row.optionalInt(10))
    }

    /// A migration's batches in sequence order, optionally only those in `state`, from
    /// `afterSequence` on, at most `limit`: what the producer publishes and `failed list` shows.
    public func batches(
        migrationId: String, state: BatchState? = nil, method: String = LedgerBatch.identityMethod,
        afterSequence: Int64 = -1, limit: Int = 1000
    ) async throws(LedgerError) -> [LedgerBatch] {
        try await database.transaction("batches", readOnly: true) { session in
            var sql = "SELECT \(Ledger.batchColumns) FROM ledger_batches WHERE migration_id = $1 AND method = $2"
            sql += " AND sequence > $3"
            var binds: [SQLValue] = [.text(migrationId), .text(method), .int(afterSequence), .int(Int64(limit))]
            if let state {
                sql += " AND state = $5"
                binds.append(.text(state.rawValue))
            }
            sql += " ORDER BY sequence LIMIT $4"
            return try await session.query(sql, binds).map { row throws in try Ledger.batch(row, operation: "batches") }
        }
    }

    /// One batch, or `nil`.
    public func batch(migrationId: String, batchId: String) async throws(LedgerError) -> LedgerBatch? {
        try await database.transaction("batch", readOnly: true) { session in
            try await session.first(
                "SELECT \(Ledger.batchColumns) FROM ledger_batches WHERE migration_id = $1 AND batch_id = $2",
                [.text(migrationId), .text(batchId)]
            ).map { row throws in try Ledger.batch(row, operation: "batch") }
        }
    }

    /// The stored result of a batch that is done (or discarded by an operator), or `nil` while it
    /// is not: a worker checks this before calling the site, so a redelivered batch is answered
    /// without a second cloud call.
    public func completedResult(migrationId: String, batchId: String) async throws(LedgerError) -> [UInt8]? {
        let operation = "completedResult"
        return try await database.transaction(operation, readOnly: true) { session in
            guard
                let row = try await session.first(
                    "SELECT state, result FROM ledger_batches WHERE migration_id = $1 AND batch_id = $2",
                    [.text(migrationId), .text(batchId)])
            else { throw LedgerError(.notFound, operation: operation, "no batch \(batchId) in \(migrationId)") }
            let state = try row.text(0)
            guard state == BatchState.done.rawValue || state == BatchState.discarded.rawValue else { return nil }
            return row.optionalBytes(1) ?? []
        }
    }

    /// A batch with its identities, ordered by normalised email then user key: everything the
    /// producer puts in the `IdentityBatch` message.
    public func loadIdentityBatch(migrationId: String, batchId: String) async throws(LedgerError)
        -> IdentityBatchContent
    {
        let operation = "loadIdentityBatch"
        return try await database.transaction(operation) { session in
            guard
                let row = try await session.first(
                    "SELECT \(Ledger.batchColumns) FROM ledger_batches WHERE migration_id = $1 AND batch_id = $2",
                    [.text(migrationId), .text(batchId)])
            else { throw LedgerError(.notFound, operation: operation, "no batch \(batchId) in \(migrationId)") }
            let batch = try Ledger.batch(row, operation: operation)
            let rows = try await session.query(
                """
                SELECT user_key, user_name, display_name, raw_email, directory_id, directory_position, active,
                    identity_kind
                FROM ledger_scope WHERE migration_id = $1 AND batch_id = $2 ORDER BY normalized_email, user_key
                """, [.text(migrationId), .text(batchId)])
            let identities = try rows.map { row throws in
                guard let kind = IdentityKind(rawValue: try row.text(7)) else {
                    throw LedgerError(.database, operation: operation, "an identity has an unknown kind")
                }
                return ServerIdentity(
                    userKey: try row.text(0), userName: try row.text(1), displayName: try row.text(2),
                    rawEmail: row.optionalText(3), directoryId: row.optionalInt(4),
                    directoryPosition: row.optionalInt(5).map { Int($0) }, isActive: try row.int(6) != 0, kind: kind)
            }
            return IdentityBatchContent(batch: batch, identities: identities)
        }
    }

    /// Accounts earlier migrations created or linked on this site for these user keys: an
    /// identity found here is `already_migrated` and costs no site call.
    public func priorMappings(siteId: String, userKeys: [String]) async throws(LedgerError) -> [String: PriorMapping] {
        let keys = Array(Set(userKeys)).sorted()
        return try await database.transaction("priorMappings", readOnly: true) { session in
            var found: [String: PriorMapping] = [:]
            for chunk in keys.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("user_key", .text)])
                for key in chunk { rows.append([.text(key)]) }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 2)
                let mapped = try await session.query(
                    with + Self.priorMappingsSelect(session.dialect), [.text(siteId)] + binds)
                for row in mapped {
                    guard let type = CloudAccountType(rawValue: try row.text(2)) else { continue }
                    found[try row.text(0)] = PriorMapping(accountId: try row.text(1), accountType: type)
                }
            }
            return found
        }
    }

    /// The lookup of `priorMappings` over the keys of `u`, the site id as `$1`.
    ///
    /// On PostgreSQL each key is an index probe of its own: a `LATERAL` subquery with `LIMIT 1`, which the
    /// planner cannot flatten into a hash join (the key is unique, so the limit drops nothing). As a plain
    /// join, planned with the statistics of a mapping table that was nearly empty when last analysed (a
    /// ledger's first minutes, before autovacuum catches up), it estimated a few hundred mappings for the
    /// site and read every one of them, for every batch: 106 ms for 500 keys among 200,000 mappings against
    /// 2.5-7 ms now (psql, idle server); in a 215,000-identity benchmark the lookups' execution time fell
    /// from 39.6 to 2.7 s. SQLite's planner probes the primary key for each key already.
    static func priorMappingsSelect(_ dialect: SQLDialect) -> String {
        switch dialect {
        case .postgres:
            return """
                 SELECT m.server_user_key, m.cloud_account_id, m.account_type FROM u
                CROSS JOIN LATERAL (
                    SELECT l.server_user_key, l.cloud_account_id, l.account_type FROM ledger_mappings l
                    WHERE l.site_id = $1 AND l.server_user_key = u.user_key AND l.outcome IN ('created', 'linked')
                    LIMIT 1) m
                """
        case .sqlite:
            return """
                 SELECT m.server_user_key, m.cloud_account_id, m.account_type
                FROM ledger_mappings m JOIN u ON m.server_user_key = u.user_key
                WHERE m.site_id = $1 AND m.outcome IN ('created', 'linked')
                """
        }
    }

    /// Completes a batch in ONE transaction: the mapping rows, each identity's outcome in the
    /// scope, the batch's state `done` and its stored result. Either all of it is committed or
    /// none of it.
    ///
    /// Idempotent: completing a batch that is already done changes nothing and returns the stored
    /// result (`replayed`), so a redelivered message is answered from it, with no second mapping
    /// row and no second site call. A mapping row that holds an account (`created`, `linked`) is
    /// never overwritten by a later migration; `former` and `rejected` rows are, so a later
    /// migration can settle what an earlier one could not.
    ///
    /// - Parameters:
    ///   - mappings: one per identity of the batch, each user key once.
    ///   - result: the `BatchResult` bytes, stored for replies to redeliveries.
    /// - Throws: `invalidRequest` when the mappings do not cover exactly the batch's identities,
    ///   `constraintViolation` for an impossible row (e.g. `created` without an account); in both
    ///   cases nothing is written.
    public func completeBatch(
        migrationId: String, batchId: String, mappings: [IdentityMapping], result: [UInt8],
        as ending: BatchEnding = .done
    ) async throws(LedgerError) -> BatchCompletion {
        let operation = "completeBatch"
        guard Set(mappings.map(\.userKey)).count == mappings.count else {
            throw LedgerError(.invalidRequest, operation: operation, "batch \(batchId) names an identity twice")
        }
        // A fixed order, so that two transactions upserting overlapping rows never deadlock.
        let sorted = mappings.sorted { $0.userKey < $1.userKey }
        let now = self.now()
        return try await database.transaction(operation) { session in
            let siteId: String
            switch try await Ledger.openCompletion(
                session, migrationId: migrationId, batchId: batchId, items: sorted.count, noun: "identities",
                result: result, now: now, ending: ending, operation: operation)
            {
            case .ended(let stored): return stored
            case .open(let site): siteId = site
            }
            for chunk in sorted.chunked(Ledger.bulkRowLimit) {
                let toMap = chunk.filter { $0.outcome != .alreadyMigrated }
                if !toMap.isEmpty {
                    var rows = BulkRows([
                        ("user_key", .text), ("account_id", .optionalText), ("account_type", .optionalText),
                        ("outcome", .text), ("flags", .int), ("reason", .optionalText),
                    ])
                    for mapping in toMap {
                        rows.append([
                            .text(mapping.userKey), .optionalText(mapping.accountId),
                            .optionalText(mapping.accountType?.rawValue), .text(mapping.outcome.rawValue),
                            .int(Int64(mapping.flags.rawValue)), .optionalText(mapping.reason),
                        ])
                    }
                    let (with, binds) = session.dialect.withRows(rows, firstParameter: 5)
                    try await session.execute(
                        with + """
                             INSERT INTO ledger_mappings (site_id, server_user_key, cloud_account_id, account_type,
                                outcome, flags, reason, migration_id, batch_id, created_at_ms, updated_at_ms)
                            SELECT $1, user_key, account_id, account_type, outcome, flags, reason, $2, $3,
                                CAST($4 AS BIGINT), CAST($4 AS BIGINT)
                            FROM u WHERE true
                            ON CONFLICT (site_id, server_user_key) DO UPDATE SET
                                cloud_account_id = excluded.cloud_account_id, account_type = excluded.account_type,
                                outcome = excluded.outcome, flags = excluded.flags, reason = excluded.reason,
                                migration_id = excluded.migration_id, batch_id = excluded.batch_id,
                                updated_at_ms = excluded.updated_at_ms
                            WHERE ledger_mappings.outcome NOT IN ('created', 'linked')
                            """, [.text(siteId), .text(migrationId), .text(batchId), .int(now)] + binds)
                }
                var outcomes = BulkRows([("user_key", .text), ("outcome", .text), ("flags", .int)])
                for mapping in chunk {
                    outcomes.append([
                        .text(mapping.userKey), .text(mapping.outcome.rawValue), .int(Int64(mapping.flags.rawValue)),
                    ])
                }
                let (with, binds) = session.dialect.withRows(outcomes, firstParameter: 3)
                let decided = try await session.query(
                    with + """
                         UPDATE ledger_scope SET outcome = u.outcome, flags = u.flags FROM u
                        WHERE ledger_scope.migration_id = $1 AND ledger_scope.batch_id = $2
                          AND ledger_scope.user_key = u.user_key
                        RETURNING ledger_scope.user_key
                        """, [.text(migrationId), .text(batchId)] + binds)
                guard decided.count == chunk.count else {
                    throw LedgerError(
                        .invalidRequest, operation: operation,
                        "\(chunk.count - decided.count) results of batch \(batchId) name identities not in it")
                }
            }
            return BatchCompletion(replayed: false, result: result)
        }
    }

    /// How ``markBatchEnded(_:migrationId:batchId:result:now:ending:operation:)`` found the batch.
    enum BatchDoneClaim {
        /// This transaction ended it; it holds this many items.
        case claimed(Int64)
        /// It was done (or discarded) already; its stored result.
        case replay([UInt8])
    }

    /// The first step of every batch completion: marks a pending or parked batch done (or, for an
    /// operator's discard, a parked batch discarded) with its result, locking its row, so a
    /// concurrent completion of the same batch waits, then finds it ended; or returns the stored
    /// result of a batch that has ended. A discard of a batch that is not parked is refused,
    /// naming its state.
    static func markBatchEnded(
        _ session: any LedgerSession, migrationId: String, batchId: String, result: [UInt8], now: Int64,
        ending: BatchEnding, operation: String
    ) async throws -> BatchDoneClaim {
        let eligible: [BatchState] = ending == .done ? [.pending, .parked] : [.parked]
        let list = eligible.enumerated().map { "$\($0.offset + 6)" }.joined(separator: ", ")
        let claimed = try await session.query(
            """
            UPDATE ledger_batches SET state = $5, attempts = attempts + 1, completed_at_ms = $3,
                first_attempt_at_ms = COALESCE(first_attempt_at_ms, $3), last_attempt_at_ms = $3,
                last_error = CASE WHEN $5 = 'discarded' THEN last_error ELSE NULL END, result = $4
            WHERE migration_id = $1 AND batch_id = $2 AND state IN (\(list))
            RETURNING identity_count
            """,
            [.text(migrationId), .text(batchId), .int(now), .bytes(result), .text(ending.state.rawValue)]
                + eligible.map { .text($0.rawValue) })
        if let batch = claimed.first { return .claimed(try batch.int(0)) }
        guard
            let stored = try await session.first(
                "SELECT state, result FROM ledger_batches WHERE migration_id = $1 AND batch_id = $2",
                [.text(migrationId), .text(batchId)])
        else { throw LedgerError(.notFound, operation: operation, "no batch \(batchId) in \(migrationId)") }
        let state = try stored.text(0)
        if ending == .discarded {
            let why =
                switch BatchState(rawValue: state) {
                case .discarded: "is already discarded"
                case .done: "is done: there is nothing to discard"
                default: "is \(state), not parked: only a parked batch can be discarded"
                }
            throw LedgerError(.invalidRequest, operation: operation, "batch \(batchId) of \(migrationId) \(why)")
        }
        return .replay(stored.optionalBytes(1) ?? [])
    }

    /// How ``openCompletion(_:migrationId:batchId:items:noun:result:now:ending:operation:)`` found the batch.
    enum CompletionOpening {
        /// This transaction ended the batch: write its rows for this site.
        case open(siteId: String)
        /// It had ended before: the stored result, to answer with.
        case ended(BatchCompletion)
    }

    /// The opening every batch completion shares: the migration's site, the batch marked ended
    /// (see ``markBatchEnded(_:migrationId:batchId:result:now:ending:operation:)``), and its item
    /// count checked against the completion's.
    static func openCompletion(
        _ session: any LedgerSession, migrationId: String, batchId: String, items: Int, noun: String,
        result: [UInt8], now: Int64, ending: BatchEnding, operation: String
    ) async throws -> CompletionOpening {
        let siteId = try await Ledger.siteId(session, migrationId, operation: operation)
        switch try await Ledger.markBatchEnded(
            session, migrationId: migrationId, batchId: batchId, result: result, now: now, ending: ending,
            operation: operation)
        {
        case .replay(let stored): return .ended(BatchCompletion(replayed: true, result: stored))
        case .claimed(let count):
            guard count == Int64(items) else {
                throw LedgerError(
                    .invalidRequest, operation: operation,
                    "batch \(batchId) has \(count) \(noun) but the completion has \(items) results")
            }
            return .open(siteId: siteId)
        }
    }

    /// Records a failed attempt at a batch that is not done: attempts + 1, the error (one line,
    /// at most 1000 characters), the attempt's time. Returns the batch as it now stands.
    @discardableResult
    public func recordFailedAttempt(migrationId: String, batchId: String, error: String) async throws(LedgerError)
        -> LedgerBatch
    {
        let operation = "recordFailedAttempt"
        let line = Ledger.oneLine(error)
        let now = self.now()
        return try await database.transaction(operation) { session in
            try await session.execute(
                """
                UPDATE ledger_batches SET attempts = attempts + 1, last_error = $3,
                    first_attempt_at_ms = COALESCE(first_attempt_at_ms, $4), last_attempt_at_ms = $4
                WHERE migration_id = $1 AND batch_id = $2 AND state IN ('pending', 'parked')
                """, [.text(migrationId), .text(batchId), .text(line), .int(now)])
            return try await Ledger.requireBatch(session, migrationId, batchId, operation: operation)
        }
    }

    /// Parks a pending batch (its retries ran out, or it cannot be processed); returns whether it moved.
    @discardableResult
    public func parkBatch(migrationId: String, batchId: String, error: String) async throws(LedgerError) -> Bool {
        try await moveBatch(
            "parkBatch", migrationId, batchId, to: .parked, from: [.pending], error: Ledger.oneLine(error))
    }

    /// Puts a parked batch back to pending and forgets its publication, in one transaction, so the
    /// next publishing pass (the aggregator's) sends it again; a migration that ended `incomplete`
    /// because of it is `running` again. Interrupted half way, either all of it happened or none.
    ///
    /// - Throws: `notFound` for an unknown batch, `invalidRequest` naming the state of a batch that
    ///   is not parked (a discarded batch stays discarded: its identities are decided).
    public func retryBatch(migrationId: String, batchId: String) async throws(LedgerError) {
        let operation = "retryBatch"
        let now = self.now()
        try await database.transaction(operation) { session in
            let moved = try await session.query(
                """
                UPDATE ledger_batches SET state = 'pending', published_at_ms = NULL, publish_lease_until_ms = NULL
                WHERE migration_id = $1 AND batch_id = $2 AND state = 'parked' RETURNING batch_id
                """, [.text(migrationId), .text(batchId)])
            guard moved.isEmpty else {
                try await session.execute(
                    """
                    UPDATE ledger_migrations SET state = 'running', updated_at_ms = $2
                    WHERE migration_id = $1 AND state = 'incomplete'
                    """, [.text(migrationId), .int(now)])
                return
            }
            let batch = try await Ledger.requireBatch(session, migrationId, batchId, operation: operation)
            throw LedgerError(
                .invalidRequest, operation: operation,
                "batch \(batchId) of \(migrationId) is \(batch.state.rawValue), not parked: there is nothing to retry")
        }
    }

    /// Puts a parked or discarded batch back to pending without touching its publication (tests of
    /// the ledger's states; operators use ``retryBatch(migrationId:batchId:)``).
    @discardableResult
    func requeueBatch(migrationId: String, batchId: String) async throws(LedgerError) -> Bool {
        try await moveBatch(
            "requeueBatch", migrationId, batchId, to: .pending, from: [.parked, .discarded], error: nil)
    }

    /// Parked and discarded batches of a migration, every method, by method then sequence: what
    /// `failed list` groups by error.
    public func failedBatches(migrationId: String, limit: Int = 100_000) async throws(LedgerError) -> [LedgerBatch] {
        let operation = "failedBatches"
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            return try await session.query(
                """
                SELECT \(Ledger.batchColumns) FROM ledger_batches
                WHERE migration_id = $1 AND state IN ('parked', 'discarded') ORDER BY method, sequence LIMIT $2
                """, [.text(migrationId), .int(Int64(limit))]
            ).map { row throws in try Ledger.batch(row, operation: operation) }
        }
    }

    private func moveBatch(
        _ operation: String, _ migrationId: String, _ batchId: String, to state: BatchState, from: [BatchState],
        error: String?
    ) async throws(LedgerError) -> Bool {
        return try await database.transaction(operation) { session in
            let list = from.enumerated().map { "$\($0.offset + 5)" }.joined(separator: ", ")
            let moved = try await session.query(
                """
                UPDATE ledger_batches SET state = $3, last_error = COALESCE($4, last_error)
                WHERE migration_id = $1 AND batch_id = $2 AND state IN (\(list)) RETURNING batch_id
                """,
                [.text(migrationId), .text(batchId), .text(state.rawValue), .optionalText(error)]
                    + from.map { .text($0.rawValue) })
            if !moved.isEmpty { return true }
            _ = try await Ledger.requireBatch(session, migrationId, batchId, operation: operation)
            return false
        }
    }

    static func requireBatch(_ session: any LedgerSession, _ migrationId: String, _ batchId: String, operation: String)
        async throws -> LedgerBatch
    {
        guard
            let row = try await session.first(
                "SELECT \(Ledger.batchColumns) FROM ledger_batches WHERE migration_id = $1 AND batch_id = $2",
                [.text(migrationId), .text(batchId)])
        else { throw LedgerError(.notFound, operation: operation, "no batch \(batchId) in \(migrationId)") }
        return try Ledger.batch(row, operation: operation)
    }

    static func oneLine(_ text: String) -> String {
        let flat = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return flat.count > 1000 ? String(flat.prefix(1000)) : flat
    }

    // MARK: Mapping rows

    /// The mapping row of one identity on a site, or `nil`.
    public func mapping(siteId: String, userKey: String) async throws(LedgerError) -> MappingRecord? {
        try await mappings(siteId: siteId, afterUserKey: nil, limit: 1, only: userKey).first
    }

    /// A site's mapping rows ordered by user key, after `afterUserKey`, at most `limit`: the
    /// mapping export a data migration uses to relink requests, read page by page.
    public func mappings(siteId: String, afterUserKey: String? = nil, limit: Int = 1000) async throws(LedgerError)
        -> [MappingRecord]
    {
        try await mappings(siteId: siteId, afterUserKey: afterUserKey, limit: limit, only: nil)
    }

    private func mappings(siteId: String, afterUserKey: String?, limit: Int, only: String?) async throws(LedgerError)
        -> [MappingRecord]
    {
        let operation = "mappings"
        return try await database.transaction(operation) { session in
            var sql = """
                SELECT site_id, server_user_key, cloud_account_id, account_type, outcome, flags, reason, migration_id,
                    batch_id
                FROM ledger_mappings WHERE site_id = $1 AND server_user_key > $2
                """
            var binds: [SQLValue] = [.text(siteId), .text(afterUserKey ?? ""), .int(Int64(limit))]
            if let only {
                sql += " AND server_user_key = $4"
                binds.append(.text(only))
            }
            sql += " ORDER BY server_user_key LIMIT $3"
            return try await session.query(sql, binds).map { row throws in
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

    /// Number of mapping rows on a site.
    public func mappingCount(siteId: String) async throws(LedgerError) -> Int {
        try await database.transaction("mappingCount", readOnly: true) { session in
            Int(
                try await session.first("SELECT COUNT(*) FROM ledger_mappings WHERE site_id = $1", [.text(siteId)])?
                    .int(0) ?? 0)
        }
    }
}
