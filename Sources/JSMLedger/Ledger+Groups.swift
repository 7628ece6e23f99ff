import JSMDomain

extension Ledger {
    // MARK: Candidates (producer, expand phase)

    /// Records groups and (group, user) pairs the producer found in the source, in one
    /// transaction; idempotent. The cut later keeps the groups that have an in-scope member.
    ///
    /// - Throws: `invalidRequest` once the scope is cut (a late candidate would be in no batch),
    ///   `notFound` for an unknown migration.
    public func recordGroupCandidates(
        migrationId: String, groups: [GroupCandidate], memberships: [MembershipCandidate]
    ) async throws(LedgerError) {
        let operation = "recordGroupCandidates"
        try await database.transaction(operation) { session in
            guard
                let phase = try await session.first(
                    "SELECT phase FROM ledger_migrations WHERE migration_id = $1" + session.dialect.forShare,
                    [.text(migrationId)])
            else { throw LedgerError(.notFound, operation: operation, "no migration \(migrationId)") }
            guard try phase.text(0) == MigrationPhase.expand.rawValue else {
                throw LedgerError(
                    .invalidRequest, operation: operation,
                    "migration \(migrationId) is past its expand phase: its groups are cut and closed")
            }
            for chunk in groups.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("lower_name", .text), ("name", .text), ("directory_id", .int)])
                for group in chunk {
                    rows.append([.text(group.lowerName), .text(group.name), .int(group.directoryId)])
                }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 2)
                try await session.execute(
                    with + """
                         INSERT INTO ledger_groups (migration_id, lower_name, name, directory_id)
                        SELECT $1, lower_name, name, directory_id FROM u WHERE true
                        ON CONFLICT (migration_id, lower_name) DO NOTHING
                        """, [.text(migrationId)] + binds)
            }
            for chunk in memberships.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("lower_name", .text), ("user_key", .text)])
                for pair in chunk { rows.append([.text(pair.lowerName), .text(pair.userKey)]) }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 2)
                try await session.execute(
                    with + """
                         INSERT INTO ledger_group_candidates (migration_id, lower_name, user_key)
                        SELECT $1, lower_name, user_key FROM u WHERE true
                        ON CONFLICT (migration_id, lower_name, user_key) DO NOTHING
                        """, [.text(migrationId)] + binds)
            }
        }
    }

    // MARK: The cut (inside the phase change)

    /// Cuts the groups with at least one in-scope member into `MigrateGroups` batches and, with
    /// `memberships`, the (in-scope group, in-scope identity) pairs into `MigrateMemberships`
    /// batches, both ordered by name so the cut depends only on the scope. Runs in the phase
    /// change's transaction, right after the identity cut.
    static func cutGroupBatches(
        _ session: any LedgerSession, migrationId: String, batchSize: Int64, memberships: Bool, now: Int64
    ) async throws {
        if session.dialect == .postgres {
            try await session.execute("ANALYZE ledger_group_candidates", [])
            try await session.execute("ANALYZE ledger_groups", [])
        }
        try await session.execute(
            """
            UPDATE ledger_groups
            SET batch_sequence = n.sequence, batch_id = $3 || CAST(n.sequence AS TEXT)
            FROM (
                SELECT g.lower_name, (ROW_NUMBER() OVER (ORDER BY g.lower_name) - 1) / CAST($2 AS BIGINT) AS sequence
                FROM ledger_groups g
                WHERE g.migration_id = $1 AND EXISTS (
                    SELECT 1 FROM ledger_group_candidates c
                    JOIN ledger_scope s ON s.migration_id = c.migration_id AND s.user_key = c.user_key
                    WHERE c.migration_id = $1 AND c.lower_name = g.lower_name)
            ) n
            WHERE ledger_groups.migration_id = $1 AND ledger_groups.lower_name = n.lower_name
            """, [.text(migrationId), .int(batchSize), .text("groups-")])
        try await session.execute(
            """
            INSERT INTO ledger_batches (migration_id, batch_id, method, sequence, state, identity_count, attempts,
                created_at_ms)
            SELECT $1, batch_id, $2, batch_sequence, 'pending', COUNT(*), 0, CAST($3 AS BIGINT)
            FROM ledger_groups WHERE migration_id = $1 AND batch_id IS NOT NULL GROUP BY batch_id, batch_sequence
            """, [.text(migrationId), .text(LedgerBatch.groupMethod), .int(now)])
        guard memberships else { return }
        try await session.execute(
            """
            INSERT INTO ledger_memberships (migration_id, lower_name, user_key, batch_id, batch_sequence)
            SELECT $1, lower_name, user_key, $3 || CAST(sequence AS TEXT), sequence FROM (
                SELECT c.lower_name, c.user_key,
                       (ROW_NUMBER() OVER (ORDER BY c.lower_name, c.user_key) - 1) / CAST($2 AS BIGINT) AS sequence
                FROM ledger_group_candidates c
                JOIN ledger_scope s ON s.migration_id = c.migration_id AND s.user_key = c.user_key
                JOIN ledger_groups g ON g.migration_id = c.migration_id AND g.lower_name = c.lower_name
                WHERE c.migration_id = $1 AND g.batch_id IS NOT NULL
            ) n
            """, [.text(migrationId), .int(batchSize), .text("memberships-")])
        try await session.execute(
            """
            INSERT INTO ledger_batches (migration_id, batch_id, method, sequence, state, identity_count, attempts,
                created_at_ms)
            SELECT $1, batch_id, $2, batch_sequence, 'pending', COUNT(*), 0, CAST($3 AS BIGINT)
            FROM ledger_memberships WHERE migration_id = $1 GROUP BY batch_id, batch_sequence
            """, [.text(migrationId), .text(LedgerBatch.membershipMethod), .int(now)])
    }

    // MARK: Batch contents (publishers)

    /// A group batch with its groups, by lower-cased name.
    public func loadGroupBatch(migrationId: String, batchId: String) async throws(LedgerError) -> GroupBatchContent {
        let operation = "loadGroupBatch"
        return try await database.transaction(operation, readOnly: true) { session in
            let batch = try await Ledger.requireBatch(session, migrationId, batchId, operation: operation)
            let groups = try await session.query(
                """
                SELECT lower_name, name, directory_id FROM ledger_groups
                WHERE migration_id = $1 AND batch_id = $2 ORDER BY lower_name
                """, [.text(migrationId), .text(batchId)]
            ).map { row throws in
                GroupCandidate(lowerName: try row.text(0), name: try row.text(1), directoryId: try row.int(2))
            }
            return GroupBatchContent(batch: batch, groups: groups)
        }
    }

    /// A membership batch with its pairs, by group then user key.
    public func loadMembershipBatch(migrationId: String, batchId: String) async throws(LedgerError)
        -> MembershipBatchContent
    {
        let operation = "loadMembershipBatch"
        return try await database.transaction(operation, readOnly: true) { session in
            let batch = try await Ledger.requireBatch(session, migrationId, batchId, operation: operation)
            let pairs = try await session.query(
                """
                SELECT lower_name, user_key FROM ledger_memberships
                WHERE migration_id = $1 AND batch_id = $2 ORDER BY lower_name, user_key
                """, [.text(migrationId), .text(batchId)]
            ).map { row throws in MembershipCandidate(lowerName: try row.text(0), userKey: try row.text(1)) }
            return MembershipBatchContent(batch: batch, memberships: pairs)
        }
    }

    /// Pending batches of `methods` (identities and groups, before memberships are published).
    public func pendingBatchCount(migrationId: String, methods: [String]) async throws(LedgerError) -> Int {
        guard !methods.isEmpty else { return 0 }
        return try await database.transaction("pendingBatchCount", readOnly: true) { session in
            let list = methods.indices.map { "$\($0 + 2)" }.joined(separator: ", ")
            return Int(
                try await session.first(
                    """
                    SELECT COUNT(*) FROM ledger_batches
                    WHERE migration_id = $1 AND state = 'pending' AND method IN (\(list))
                    """, [.text(migrationId)] + methods.map(SQLValue.text))?.int(0) ?? 0)
        }
    }

    // MARK: Workers

    /// Cloud group ids earlier migrations created or reused on this site, by lower-cased name: a
    /// group found here that the site still has is `already_migrated` (the worker asks the site
    /// once per 50 groups); one deleted since is provisioned again and its new id replaces this one.
    public func priorGroupMappings(siteId: String, lowerNames: [String]) async throws(LedgerError) -> [String: String] {
        try await database.transaction("priorGroupMappings", readOnly: true) { session in
            var found: [String: String] = [:]
            for chunk in Array(Set(lowerNames)).sorted().chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("lower_name", .text)])
                for name in chunk { rows.append([.text(name)]) }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 2)
                for row in try await session.query(
                    with + """
                         SELECT m.lower_name, m.cloud_group_id FROM ledger_group_mappings m
                        JOIN u ON m.lower_name = u.lower_name
                        WHERE m.site_id = $1 AND m.outcome IN ('created', 'reused')
                        """, [.text(siteId)] + binds)
                {
                    found[try row.text(0)] = try row.text(1)
                }
            }
            return found
        }
    }

    /// What a membership batch maps to: the migrated groups, the members' accounts, and the pairs
    /// an earlier migration already added on this site.
    public func membershipTargets(siteId: String, memberships: [MembershipCandidate]) async throws(LedgerError)
        -> MembershipTargets
    {
        let groups = try await priorGroupMappings(siteId: siteId, lowerNames: memberships.map(\.lowerName))
        let accounts = try await priorMappings(siteId: siteId, userKeys: memberships.map(\.userKey))
        let done = try await recordedMemberships(siteId: siteId, memberships: memberships)
        return MembershipTargets(groups: groups, accounts: accounts, alreadyMigrated: done)
    }

    /// The pairs an earlier migration already added on this site, to the cloud group the site's
    /// group mapping names now (their memberships are `already_migrated`; pairs added to a group
    /// deleted and provisioned again since are not): what a dry run needs of
    /// ``membershipTargets(siteId:memberships:)``.
    public func recordedMemberships(siteId: String, memberships: [MembershipCandidate]) async throws(LedgerError)
        -> Set<MembershipCandidate>
    {
        try await database.transaction("recordedMemberships", readOnly: true) { session in
            var found = Set<MembershipCandidate>()
            for chunk in memberships.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("lower_name", .text), ("user_key", .text)])
                for pair in chunk { rows.append([.text(pair.lowerName), .text(pair.userKey)]) }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 2)
                for row in try await session.query(
                    with + """
                         SELECT m.lower_name, m.user_key FROM ledger_membership_mappings m
                        JOIN u ON m.lower_name = u.lower_name AND m.user_key = u.user_key
                        JOIN ledger_group_mappings g ON g.site_id = m.site_id AND g.lower_name = m.lower_name
                        WHERE m.site_id = $1 AND g.cloud_group_id = m.cloud_group_id
                        """, [.text(siteId)] + binds)
                {
                    found.insert(MembershipCandidate(lowerName: try row.text(0), userKey: try row.text(1)))
                }
            }
            return found
        }
    }

    /// Completes a group batch in ONE transaction: the per-site group mappings (a rejected group's
    /// is overwritten by a later migration's result; a created or reused one's only by another
    /// group, once the site had deleted it), each group's
    /// outcome, the batch's state `done` and its stored result. Idempotent like
    /// ``completeBatch(migrationId:batchId:mappings:result:)``.
    public func completeGroupBatch(
        migrationId: String, batchId: String, groups: [GroupCompletion], result: [UInt8],
        as ending: BatchEnding = .done
    ) async throws(LedgerError) -> BatchCompletion {
        let operation = "completeGroupBatch"
        guard Set(groups.map(\.lowerName)).count == groups.count else {
            throw LedgerError(.invalidRequest, operation: operation, "batch \(batchId) names a group twice")
        }
        let sorted = groups.sorted { $0.lowerName < $1.lowerName }
        let now = self.now()
        return try await database.transaction(operation) { session in
            let siteId: String
            switch try await Ledger.openCompletion(
                session, migrationId: migrationId, batchId: batchId, items: sorted.count, noun: "groups",
                result: result, now: now, ending: ending, operation: operation)
            {
            case .ended(let stored): return stored
            case .open(let site): siteId = site
            }
            for chunk in sorted.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([
                    ("lower_name", .text), ("outcome", .text), ("cloud_group_id", .optionalText),
                    ("escalation_risk", .int), ("detail", .optionalText),
                ])
                for group in chunk {
                    rows.append([
                        .text(group.lowerName), .text(group.outcome.rawValue), .optionalText(group.cloudGroupId),
                        .int(group.escalationRisk ? 1 : 0), .optionalText(group.detail),
                    ])
                }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 5)
                try await session.execute(
                    with + """
                         INSERT INTO ledger_group_mappings (site_id, lower_name, name, cloud_group_id, outcome, reason,
                            migration_id, batch_id, created_at_ms, updated_at_ms)
                        SELECT $1, u.lower_name, g.name, u.cloud_group_id, u.outcome, u.detail, $2, $3,
                            CAST($4 AS BIGINT), CAST($4 AS BIGINT)
                        FROM u JOIN ledger_groups g ON g.migration_id = $2 AND g.lower_name = u.lower_name
                        WHERE u.outcome <> 'already_migrated'
                        ON CONFLICT (site_id, lower_name) DO UPDATE SET
                            cloud_group_id = excluded.cloud_group_id, outcome = excluded.outcome,
                            reason = excluded.reason, migration_id = excluded.migration_id,
                            batch_id = excluded.batch_id, updated_at_ms = excluded.updated_at_ms
                        WHERE ledger_group_mappings.outcome = 'rejected'
                           OR (excluded.outcome <> 'rejected'
                               AND ledger_group_mappings.cloud_group_id <> excluded.cloud_group_id)
                        """, [.text(siteId), .text(migrationId), .text(batchId), .int(now)] + binds)
                let (with2, binds2) = session.dialect.withRows(rows, firstParameter: 3)
                let decided = try await session.query(
                    with2 + """
                         UPDATE ledger_groups SET outcome = u.outcome, cloud_group_id = u.cloud_group_id,
                            escalation_risk = u.escalation_risk, detail = u.detail
                        FROM u
                        WHERE ledger_groups.migration_id = $1 AND ledger_groups.batch_id = $2
                          AND ledger_groups.lower_name = u.lower_name
                        RETURNING ledger_groups.lower_name
                        """, [.text(migrationId), .text(batchId)] + binds2)
                guard decided.count == chunk.count else {
                    throw LedgerError(
                        .invalidRequest, operation: operation,
                        "\(chunk.count - decided.count) results of batch \(batchId) name groups not in it")
                }
            }
            return BatchCompletion(replayed: false, result: result)
        }
    }

    /// Completes a membership batch in ONE transaction: the per-site membership rows of pairs now
    /// on the site, each pair's outcome, the batch's state `done` and its stored result. Idempotent.
    public func completeMembershipBatch(
        migrationId: String, batchId: String, memberships: [MembershipCompletion], result: [UInt8],
        as ending: BatchEnding = .done
    ) async throws(LedgerError) -> BatchCompletion {
        let operation = "completeMembershipBatch"
        guard Set(memberships.map(\.membership)).count == memberships.count else {
            throw LedgerError(.invalidRequest, operation: operation, "batch \(batchId) names a membership twice")
        }
        let sorted = memberships.sorted {
            ($0.membership.lowerName, $0.membership.userKey) < ($1.membership.lowerName, $1.membership.userKey)
        }
        let now = self.now()
        return try await database.transaction(operation) { session in
            let siteId: String
            switch try await Ledger.openCompletion(
                session, migrationId: migrationId, batchId: batchId, items: sorted.count, noun: "memberships",
                result: result, now: now, ending: ending, operation: operation)
            {
            case .ended(let stored): return stored
            case .open(let site): siteId = site
            }
            for chunk in sorted.chunked(Ledger.bulkRowLimit) {
                let onSite = chunk.filter { $0.outcome == .added || $0.outcome == .alreadyMember }
                if !onSite.isEmpty {
                    var rows = BulkRows([
                        ("lower_name", .text), ("user_key", .text), ("cloud_group_id", .text),
                        ("cloud_account_id", .text), ("outcome", .text),
                    ])
                    for pair in onSite {
                        guard let group = pair.cloudGroupId, let account = pair.cloudAccountId else {
                            throw LedgerError(
                                .constraintViolation, operation: operation,
                                "membership \(pair.membership.lowerName)/\(pair.membership.userKey) is "
                                    + "\(pair.outcome.rawValue) without a cloud group and account")
                        }
                        rows.append([
                            .text(pair.membership.lowerName), .text(pair.membership.userKey), .text(group),
                            .text(account), .text(pair.outcome.rawValue),
                        ])
                    }
                    let (with, binds) = session.dialect.withRows(rows, firstParameter: 5)
                    try await session.execute(
                        with + """
                             INSERT INTO ledger_membership_mappings (site_id, lower_name, user_key, cloud_group_id,
                                cloud_account_id, outcome, migration_id, batch_id, created_at_ms)
                            SELECT $1, lower_name, user_key, cloud_group_id, cloud_account_id, outcome, $2, $3,
                                CAST($4 AS BIGINT)
                            FROM u WHERE true
                            ON CONFLICT (site_id, lower_name, user_key) DO UPDATE SET
                                cloud_group_id = excluded.cloud_group_id,
                                cloud_account_id = excluded.cloud_account_id, outcome = excluded.outcome,
                                migration_id = excluded.migration_id, batch_id = excluded.batch_id
                            WHERE ledger_membership_mappings.cloud_group_id <> excluded.cloud_group_id
                            """, [.text(siteId), .text(migrationId), .text(batchId), .int(now)] + binds)
                }
                var outcomes = BulkRows([
                    ("lower_name", .text), ("user_key", .text), ("outcome", .text), ("detail", .optionalText),
                ])
                for pair in chunk {
                    outcomes.append([
                        .text(pair.membership.lowerName), .text(pair.membership.userKey), .text(pair.outcome.rawValue),
                        .optionalText(pair.detail),
                    ])
                }
                let (with, binds) = session.dialect.withRows(outcomes, firstParameter: 3)
                let decided = try await session.query(
                    with + """
                         UPDATE ledger_memberships SET outcome = u.outcome, detail = u.detail FROM u
                        WHERE ledger_memberships.migration_id = $1 AND ledger_memberships.batch_id = $2
                          AND ledger_memberships.lower_name = u.lower_name AND ledger_memberships.user_key = u.user_key
                        RETURNING ledger_memberships.user_key
                        """, [.text(migrationId), .text(batchId)] + binds)
                guard decided.count == chunk.count else {
                    throw LedgerError(
                        .invalidRequest, operation: operation,
                        "\(chunk.count - decided.count) results of batch \(batchId) name memberships not in it")
                }
            }
            return BatchCompletion(replayed: false, result: result)
        }
    }

    // MARK: Totals and report

    /// A migration's groups and memberships counted by outcome (undecided ones count in scope only).
    public func groupTotals(migrationId: String) async throws(LedgerError) -> GroupPhaseTotals {
        let operation = "groupTotals"
        return try await database.transaction(operation, readOnly: true) { session in
            try await Ledger.requireMigration(session, migrationId, operation: operation)
            var totals = GroupPhaseTotals()
            for row in try await session.query(
                """
                SELECT outcome, escalation_risk, COUNT(*) FROM ledger_groups
                WHERE migration_id = $1 AND batch_id IS NOT NULL GROUP BY outcome, escalation_risk
                """, [.text(migrationId)])
            {
                let count = Int(try row.int(2))
                totals.groups.inScope += count
                if try row.int(1) != 0 { totals.groups.escalationRisks += count }
                switch row.optionalText(0).flatMap(GroupOutcomeKind.init(rawValue:)) {
                case .created: totals.groups.created += count
                case .reused: totals.groups.reused += count
                case .alreadyMigrated: totals.groups.alreadyMigrated += count
                case .rejected: totals.groups.rejected += count
                case nil: break
                }
            }
            for row in try await session.query(
                "SELECT outcome, COUNT(*) FROM ledger_memberships WHERE migration_id = $1 GROUP BY outcome",
                [.text(migrationId)])
            {
                let count = Int(try row.int(1))
                totals.memberships.inScope += count
                switch row.optionalText(0).flatMap(MembershipOutcomeKind.init(rawValue:)) {
                case .added: totals.memberships.added += count
                case .alreadyMember: totals.memberships.alreadyMember += count
                case .alreadyMigrated: totals.memberships.alreadyMigrated += count
                case .skippedNoAccount, .skippedCustomerAccount, .skippedNoGroup: totals.memberships.skipped += count
                case .rejected: totals.memberships.rejected += count
                case nil: break
                }
            }
            return totals
        }
    }

    /// The migration's groups and memberships that need an operator's attention: reused groups
    /// (each a permission-escalation risk, with the members this migration added to it), groups
    /// created with a detail (in place of one the site deleted), rejected groups and rejected
    /// memberships; by kind, then name. Few next to identities: read at once.
    public func groupAttentionRecords(migrationId: String) async throws(LedgerError) -> [GroupAttentionRecord] {
        try await database.transaction("groupAttentionRecords", readOnly: true) { session in
            let groups = try await session.query(
                """
                SELECT g.name, g.outcome, g.cloud_group_id, g.detail, g.batch_id,
                    (SELECT COUNT(*) FROM ledger_memberships m WHERE m.migration_id = g.migration_id
                       AND m.lower_name = g.lower_name AND m.outcome = 'added')
                FROM ledger_groups g WHERE g.migration_id = $1
                  AND (g.outcome IN ('reused', 'rejected') OR (g.outcome = 'created' AND g.detail IS NOT NULL))
                ORDER BY g.lower_name
                """, [.text(migrationId)]
            ).map { row throws in
                GroupAttentionRecord(
                    key: try row.text(0), kind: .group, outcome: try row.text(1), cloudGroupId: row.optionalText(2),
                    detail: row.optionalText(3) ?? "", batchId: row.optionalText(4) ?? "",
                    membersAdded: Int(try row.int(5)))
            }
            let memberships = try await session.query(
                """
                SELECT lower_name, user_key, detail, batch_id FROM ledger_memberships
                WHERE migration_id = $1 AND outcome = 'rejected' ORDER BY lower_name, user_key
                """, [.text(migrationId)]
            ).map { row throws in
                GroupAttentionRecord(
                    key: "\(try row.text(0))/\(try row.text(1))", kind: .membership, outcome: "rejected",
                    cloudGroupId: nil, detail: row.optionalText(2) ?? "", batchId: try row.text(3), membersAdded: 0)
            }
            return groups + memberships
        }
    }

    /// The migration's in-scope groups with their outcome and cloud group, by lower-cased name, at
    /// most `limit`: what `verify` and the tests compare with their own recount.
    public func groupRecords(migrationId: String, limit: Int = 100_000) async throws(LedgerError)
        -> [GroupScopeRecord]
    {
        try await database.transaction("groupRecords", readOnly: true) { session in
            try await session.query(
                """
                SELECT lower_name, outcome, cloud_group_id FROM ledger_groups
                WHERE migration_id = $1 AND batch_id IS NOT NULL ORDER BY lower_name LIMIT $2
                """, [.text(migrationId), .int(Int64(limit))]
            ).map { row throws in
                GroupScopeRecord(
                    lowerName: try row.text(0), outcome: row.optionalText(1).flatMap(GroupOutcomeKind.init(rawValue:)),
                    cloudGroupId: row.optionalText(2))
            }
        }
    }

    /// The migration's memberships with their outcome, by group then user key, at most `limit`.
    public func membershipRecords(migrationId: String, limit: Int = 1_000_000) async throws(LedgerError)
        -> [MembershipScopeRecord]
    {
        try await database.transaction("membershipRecords", readOnly: true) { session in
            try await session.query(
                """
                SELECT lower_name, user_key, outcome FROM ledger_memberships
                WHERE migration_id = $1 ORDER BY lower_name, user_key LIMIT $2
                """, [.text(migrationId), .int(Int64(limit))]
            ).map { row throws in
                MembershipScopeRecord(
                    membership: MembershipCandidate(lowerName: try row.text(0), userKey: try row.text(1)),
                    outcome: row.optionalText(2).flatMap(MembershipOutcomeKind.init(rawValue:)))
            }
        }
    }

    static func siteId(_ session: any LedgerSession, _ migrationId: String, operation: String) async throws -> String {
        guard
            let site = try await session.first(
                "SELECT site_id FROM ledger_migrations WHERE migration_id = $1", [.text(migrationId)])
        else { throw LedgerError(.notFound, operation: operation, "no migration \(migrationId)") }
        return try site.text(0)
    }
}
