import JSMDomain

extension Ledger {
    static let migrationColumns = """
        migration_id, site_id, options_json, state, phase, batch_size, project_count, batch_count,
        identity_count, created_by, created_at_ms, updated_at_ms
        """

    static func migrationRecord(_ row: SQLRow, operation: String) throws(LedgerError) -> MigrationRecord {
        let id = try row.text(0)
        guard let options = StoredOptions.decode(try row.text(2)),
            let state = MigrationState(rawValue: try row.text(3)),
            let phase = MigrationPhase(rawValue: try row.text(4)),
            let customers = CustomerScope(rawValue: options.customers), let users = UserScope(rawValue: options.users),
            let invalidEmail = InvalidEmailPolicy(rawValue: options.invalidEmail),
            let duplicateEmail = DuplicateEmailPolicy(rawValue: options.duplicateEmail)
        else {
            throw LedgerError(.database, operation: operation, "migration \(id) has a row this program cannot read")
        }
        return MigrationRecord(
            id: id, siteId: try row.text(1), projectIds: options.projectIds,
            scope: ScopeOptions(customers: customers, includeRequestless: options.includeRequestless, users: users),
            policies: MigrationPolicies(invalidEmail: invalidEmail, duplicateEmail: duplicateEmail),
            groups: options.groups, groupMembership: options.groupMembership, batchSize: Int(try row.int(5)),
            state: state, phase: phase, projectCount: Int(try row.int(6)), batchCount: row.optionalInt(7).map(Int.init),
            identityCount: row.optionalInt(8).map(Int.init), createdBy: try row.text(9),
            createdAtMilliseconds: try row.int(10), updatedAtMilliseconds: try row.int(11))
    }

    /// Creates a migration in state `saved`, or resumes the one with this id when its definition
    /// is the same. Another definition under the same id is refused, naming the options that
    /// differ, so an operator never continues a migration with options it was not started with.
    public func createOrResumeMigration(_ definition: MigrationDefinition) async throws(LedgerError) -> MigrationStart {
        let operation = "createOrResumeMigration"
        guard !definition.id.isEmpty, !definition.siteId.isEmpty else {
            throw LedgerError(.invalidRequest, operation: operation, "a migration needs an id and a site id")
        }
        guard definition.batchSize > 0 else {
            throw LedgerError(.invalidRequest, operation: operation, "the batch size must be positive")
        }
        guard Set(definition.projects.map(\.id)).count == definition.projects.count else {
            throw LedgerError(.invalidRequest, operation: operation, "a project is selected twice")
        }
        do {
            try ScopeSelection.validate(options: definition.scope, projects: definition.projects)
        } catch {
            throw LedgerError(.invalidRequest, operation: operation, error.message)
        }
        let options = StoredOptions(definition)
        let json = options.json()
        let now = self.now()
        return try await database.transaction(operation) { session in
            let select = "SELECT \(Ledger.migrationColumns) FROM ledger_migrations WHERE migration_id = $1"
            func existing(_ row: SQLRow) throws -> MigrationStart {
                let storedJSON = try row.text(2)
                guard storedJSON == json else {
                    let differing = StoredOptions.decode(storedJSON).map { options.differences(from: $0) } ?? []
                    let named = differing.isEmpty ? "its options" : differing.joined(separator: ", ")
                    throw LedgerError(
                        .migrationConflict, operation: operation,
                        "migration \(definition.id) already exists with other options (\(named) differ); "
                            + "resume it with the same options or start a migration with a new id")
                }
                return MigrationStart(migration: try Ledger.migrationRecord(row, operation: operation), resumed: true)
            }
            if let row = try await session.first(select, [.text(definition.id)]) { return try existing(row) }
            let inserted = try await session.query(
                """
                INSERT INTO ledger_migrations (migration_id, site_id, options_json, state, phase, batch_size,
                    project_count, created_by, created_at_ms, updated_at_ms)
                VALUES ($1, $2, $3, 'saved', 'expand', $4, $5, $6, $7, $7)
                ON CONFLICT (migration_id) DO NOTHING RETURNING migration_id
                """,
                [
                    .text(definition.id), .text(definition.siteId), .text(json), .int(Int64(definition.batchSize)),
                    .int(Int64(definition.projects.count)), .text(definition.createdBy), .int(now),
                ])
            if inserted.isEmpty, let row = try await session.first(select, [.text(definition.id)]) {
                // Another producer created it between our read and our insert.
                return try existing(row)
            }
            if !definition.projects.isEmpty {
                var rows = BulkRows([
                    ("project_id", .int), ("project_key", .text), ("project_name", .text), ("service_project", .int),
                ])
                for project in definition.projects {
                    rows.append([
                        .int(project.id), .text(project.key), .text(project.name),
                        .int(project.isServiceProject ? 1 : 0),
                    ])
                }
                let (with, binds) = session.dialect.withRows(rows, firstParameter: 2)
                try await session.execute(
                    with + """
                         INSERT INTO ledger_projects (migration_id, project_id, project_key, project_name, service_project)
                        SELECT $1, project_id, project_key, project_name, service_project FROM u WHERE true
                        ON CONFLICT (migration_id, project_id) DO NOTHING
                        """, [.text(definition.id)] + binds)
            }
            guard let row = try await session.first(select, [.text(definition.id)]) else {
                throw LedgerError(.database, operation: operation, "migration \(definition.id) vanished while created")
            }
            return MigrationStart(migration: try Ledger.migrationRecord(row, operation: operation), resumed: false)
        }
    }

    /// The migration with this id, or `nil`.
    public func migration(_ id: String) async throws(LedgerError) -> MigrationRecord? {
        try await database.transaction("migration", readOnly: true) { session in
            try await session.first(
                "SELECT \(Ledger.migrationColumns) FROM ledger_migrations WHERE migration_id = $1", [.text(id)]
            ).map { row throws in try Ledger.migrationRecord(row, operation: "migration") }
        }
    }

    /// Moves a migration to `state` if it is in one of `expected` (all states when empty); returns
    /// whether this call changed it, so that two aggregators cannot both finish a migration.
    @discardableResult
    public func setMigrationState(
        _ id: String, to state: MigrationState, from expected: Set<MigrationState> = []
    ) async throws(LedgerError) -> Bool {
        let operation = "setMigrationState"
        let allowed = (expected.isEmpty ? Set(MigrationState.allCases) : expected).map(\.rawValue).sorted()
        let now = self.now()
        return try await database.transaction(operation) { session in
            let list = allowed.enumerated().map { "$\($0.offset + 4)" }.joined(separator: ", ")
            let changed = try await session.query(
                """
                UPDATE ledger_migrations SET state = $2, updated_at_ms = $3
                WHERE migration_id = $1 AND state IN (\(list)) RETURNING migration_id
                """, [.text(id), .text(state.rawValue), .int(now)] + allowed.map(SQLValue.text))
            if !changed.isEmpty { return true }
            try await Ledger.requireMigration(session, id, operation: operation)
            return false
        }
    }

    /// Moves the migration from the expand phase to the migrate phase once every selected project
    /// is expanded, and in the same transaction cuts the scope into batches (identities, and with
    /// `--groups` the groups and memberships, see ``cutGroupBatches(_:migrationId:batchSize:memberships:now:)``). Exactly one caller
    /// wins, however many try at once and however often (a conditional update of the phase that
    /// locks the row); the winner publishes the batches. A crash before the commit leaves the
    /// migration in the expand phase, so the next caller wins instead.
    public func advanceToMigratePhase(migrationId: String) async throws(LedgerError) -> PhaseAdvance {
        let operation = "advanceToMigratePhase"
        let now = self.now()
        let cutPageSize = self.cutPageSize
        return try await database.transaction(operation) { session in
            let won = try await session.query(
                """
                UPDATE ledger_migrations SET phase = 'migrate', phase_changed_at_ms = $2, updated_at_ms = $2
                WHERE migration_id = $1 AND phase = 'expand'
                  AND NOT EXISTS (SELECT 1 FROM ledger_projects p
                                  WHERE p.migration_id = $1 AND p.expanded_at_ms IS NULL)
                RETURNING batch_size, options_json
                """, [.text(migrationId), .int(now)])
            if let row = won.first {
                let batchSize = try row.int(0)
                let cut = try await Ledger.cutIdentityBatches(
                    session, migrationId: migrationId, batchSize: batchSize, pageSize: cutPageSize, now: now)
                if let options = StoredOptions.decode(try row.text(1)), options.groups {
                    try await Ledger.cutGroupBatches(
                        session, migrationId: migrationId, batchSize: batchSize,
                        memberships: options.groupMembership, now: now)
                }
                return .advanced(cut)
            }
            guard
                let row = try await session.first(
                    "SELECT phase, batch_count, identity_count FROM ledger_migrations WHERE migration_id = $1",
                    [.text(migrationId)])
            else { throw LedgerError(.notFound, operation: operation, "no migration \(migrationId)") }
            if try row.text(0) == MigrationPhase.migrate.rawValue {
                return .alreadyAdvanced(
                    BatchCut(
                        batchCount: Int(row.optionalInt(1) ?? 0), identityCount: Int(row.optionalInt(2) ?? 0)))
            }
            let pending = try await session.first(
                "SELECT COUNT(*) FROM ledger_projects WHERE migration_id = $1 AND expanded_at_ms IS NULL",
                [.text(migrationId)])
            return .projectsPending(Int(try pending?.int(0) ?? 0))
        }
    }

    /// Cuts the scope into batches of about `batchSize` identities in one pass over its email order:
    /// identities ordered by normalised email then user key; every identity of one non-empty
    /// email goes to the batch where that email's first identity falls, so an email is never
    /// split (a batch may exceed the size to keep one together), and the result depends only on
    /// the scope, never on timing.
    ///
    /// What needs no worker was settled as it was claimed: an identity an earlier migration
    /// created or linked on this site is `already_migrated` (flagged `disabled` when inactive), as
    /// the rules decide it (``MigrationRules/decide(_:existingAccounts:priorMapping:policies:)``,
    /// row 1). First, in one statement, the cut keeps that only when every identity of its email
    /// is in that case too (otherwise the whole email group goes to a batch, so its primary is
    /// chosen as usual). A second migration over a scope migrated in advance then costs no
    /// message per batch and no second write of each identity.
    static func cutIdentityBatches(
        _ session: any LedgerSession, migrationId: String, batchSize: Int64, pageSize: Int, now: Int64
    ) async throws -> BatchCut {
        let guarded = try await session.query(
            """
            UPDATE ledger_migrations SET batches_cut_at_ms = $2
            WHERE migration_id = $1 AND batches_cut_at_ms IS NULL RETURNING migration_id
            """, [.text(migrationId), .int(now)])
        guard !guarded.isEmpty else {
            throw LedgerError(
                .invalidRequest, operation: "advanceToMigratePhase", "the scope of \(migrationId) was already cut")
        }
        if session.dialect == .postgres {
            // The scope was just bulk-inserted: without fresh statistics the planner joins the
            // ranked rows back to the table with a nested loop, quadratic in the scope (minutes for
            // 100,000 identities instead of about a second).
            try await session.execute("ANALYZE ledger_scope", [])
        }
        // Claims settled the identities already mapped on this site; an email group with an
        // undecided identity goes to a batch whole, so its primary is chosen as usual.
        // Some were settled when the scope holds more than its undecided identities. Both counts
        // read an index only (0.05 and 0.08 s at 1M in sqlite3); looking for one settled row read
        // every row of a first migration's scope (0.8 s).
        let scope = try await session.first(
            "SELECT COUNT(*) FROM ledger_scope WHERE migration_id = $1", [.text(migrationId)])
        let undecided = try await session.first(
            "SELECT COUNT(*) FROM ledger_scope WHERE migration_id = $1 AND " + awaitingCut(session.dialect),
            [.text(migrationId)])
        let scopeCount = try scope?.int(0) ?? 0
        // A first migration settles nothing at claim time: no need to list its emails (1.3 s at 1 M).
        if scopeCount > (try undecided?.int(0) ?? 0) {
            // `target` and `rows` let SQLite read the rows its own way (below).
            func returnToBatches(_ target: String, rows: String) -> String {
                """
                UPDATE \(target) SET outcome = NULL, flags = NULL, settled_at_claim = NULL
                WHERE \(rows)migration_id = $1 AND outcome = 'already_migrated' AND normalized_email <> ''
                  AND normalized_email IN (
                      SELECT o.normalized_email FROM ledger_scope o
                      WHERE o.migration_id = $1 AND \(awaitingCut(session.dialect, alias: "o"))
                        AND o.normalized_email <> '')
                """
            }
            switch session.dialect {
            case .postgres:
                try await session.execute(returnToBatches("ledger_scope", rows: ""), [.text(migrationId)])
            case .sqlite:
                // Every settled row is read. Through the primary key's index each is a lookup of
                // its table row in key order (1.6-2.1 s at 1M in sqlite3); in rowid order between
                // the migration's first and last rows (its claims are written together, so few
                // rows of other migrations lie between) they are one sequential pass: 0.8 s, and
                // 0.2 s for the bounds, read from the same index.
                if let bounds = try await session.first(
                    "SELECT MIN(rowid), MAX(rowid) FROM ledger_scope WHERE migration_id = $1", [.text(migrationId)]),
                    let first = bounds.optionalInt(0), let last = bounds.optionalInt(1)
                {
                    try await session.execute(
                        returnToBatches("ledger_scope NOT INDEXED", rows: "rowid BETWEEN $2 AND $3 AND "),
                        [.text(migrationId), .int(first), .int(last)])
                }
            }
        }
        try await assignBatches(
            session, migrationId: migrationId, batchSize: batchSize, pageSize: pageSize, atMost: scopeCount)
        let batches = try await session.query(
            """
            INSERT INTO ledger_batches (migration_id, batch_id, method, sequence, state, identity_count, attempts,
                created_at_ms)
            SELECT $1, batch_id, $2, batch_sequence, 'pending', COUNT(*), 0, CAST($3 AS BIGINT)
            FROM ledger_scope WHERE migration_id = $1 AND batch_id IS NOT NULL GROUP BY batch_id, batch_sequence
            RETURNING identity_count
            """, [.text(migrationId), .text(LedgerBatch.identityMethod), .int(now)])
        var identities: Int64 = 0
        for row in batches { identities += try row.int(0) }
        try await session.execute(
            "UPDATE ledger_migrations SET batch_count = $2, identity_count = $3 WHERE migration_id = $1",
            [.text(migrationId), .int(Int64(batches.count)), .int(identities)])
        // The identities in no batch are the scope less the batched ones (counting `batch_id IS
        // NULL` read every row of the scope: 1.5 s at 1M in sqlite3).
        return BatchCut(
            batchCount: batches.count, identityCount: Int(identities), settledAtCut: Int(scopeCount - identities))
    }

    /// The undecided scope rows awaiting the cut, as a condition that lets the database read them
    /// from `ledger_scope_order`. Before the cut no row has a batch, and a row the claim settled is
    /// marked `settled_at_claim` until the cut returns it to the batches with its email (it then
    /// clears the mark with the outcome), so every form selects the same rows. PostgreSQL reads a
    /// partial index only for a condition that implies the index's own (schema v9: no batch, not
    /// settled at claim); the `outcome` test keeps the rows of a migration claimed before v8, which
    /// have no mark, out. SQLite's index names `outcome` alone, and asking for more there would
    /// read the table for every entry.
    static func awaitingCut(_ dialect: SQLDialect, alias: String = "") -> String {
        let column = alias.isEmpty ? "" : alias + "."
        switch dialect {
        case .postgres:
            return "\(column)outcome IS NULL AND \(column)batch_id IS NULL AND \(column)settled_at_claim IS NULL"
        case .sqlite: return "\(column)outcome IS NULL"
        }
    }

    /// Gives every undecided identity its batch: in email then user-key order, an identity's
    /// group starts at its own position, or for a non-empty email at the position of that email's
    /// first identity; a batch is every group starting in one run of `batchSize` positions,
    /// numbered densely from 0. On SQLite, one pass over the email order, a page at a time (memory
    /// stays at one page), each page's rows rewritten by rowid: at 1M identities 6.7 s, against
    /// 10.4 s for one UPDATE over three window functions (sqlite3, the same ledger). PostgreSQL
    /// keeps that UPDATE. `atMost` bounds the undecided identities (the scope's count will do).
    static func assignBatches(
        _ session: any LedgerSession, migrationId: String, batchSize: Int64, pageSize: Int, atMost: Int64
    ) async throws {
        if session.dialect == .postgres {
            // PostgreSQL ranks the whole scope in one statement faster than in pages of round
            // trips: 100,000 identities in 1.50 s against 1.80-1.84 s (`scripts/bench-ledger.sh
            // --backend postgres`); SQLite is the other way round (see above).
            try await session.execute(
                """
                UPDATE ledger_scope
                SET batch_sequence = n.sequence, batch_id = $3 || CAST(n.sequence AS TEXT)
                FROM (
                    SELECT user_key, DENSE_RANK() OVER (ORDER BY group_start / CAST($2 AS BIGINT)) - 1 AS sequence
                    FROM (
                        SELECT user_key,
                               CASE WHEN normalized_email = '' THEN position
                                    ELSE MIN(position) OVER (PARTITION BY normalized_email) END AS group_start
                        FROM (
                            SELECT user_key, normalized_email,
                                   ROW_NUMBER() OVER (ORDER BY normalized_email, user_key) - 1 AS position
                            FROM ledger_scope WHERE migration_id = $1 AND \(awaitingCut(.postgres))
                        ) ordered
                    ) grouped
                ) n
                WHERE ledger_scope.migration_id = $1 AND ledger_scope.user_key = n.user_key
                """, [.text(migrationId), .int(batchSize), .text("identities-")])
            return
        }
        // Bounded: each page is at least one row further, and the pass ends on an empty page.
        let pages = Int(max(0, atMost)) / pageSize + 1
        var after: (email: String, userKey: String)?
        var position: Int64 = 0
        var groupEmail = ""
        var groupStart: Int64 = 0
        var sequence: Int64 = -1
        var lastRun: Int64 = -1
        for _ in 0..<pages {
            var binds: [SQLValue] = [.text(migrationId), .int(Int64(pageSize))]
            var from = ""
            if let after {
                from = " AND (normalized_email, user_key) > ($3, $4)"
                binds += [.text(after.email), .text(after.userKey)]
            }
            let page = try await session.query(
                """
                SELECT rowid, normalized_email, user_key FROM ledger_scope
                WHERE migration_id = $1 AND outcome IS NULL\(from)
                ORDER BY normalized_email, user_key LIMIT $2
                """, binds)
            guard let last = page.last else { break }
            after = (try last.text(1), try last.text(2))
            for chunk in page.chunked(Ledger.bulkRowLimit) {
                var rows = BulkRows([("row_id", .int), ("sequence", .int)])
                for row in chunk {
                    let email = try row.text(1)
                    if email.isEmpty || email != groupEmail {
                        groupStart = position
                        groupEmail = email
                    }
                    if groupStart / batchSize != lastRun {
                        lastRun = groupStart / batchSize
                        sequence += 1
                    }
                    position += 1
                    rows.append([row.values[0], .int(sequence)])
                }
                let (with, rowBinds) = session.dialect.withRows(rows, firstParameter: 3)
                try await session.execute(
                    with + """
                         UPDATE ledger_scope SET batch_sequence = u.sequence, batch_id = $2 || CAST(u.sequence AS TEXT)
                        FROM u WHERE ledger_scope.migration_id = $1 AND ledger_scope.rowid = u.row_id
                        """, [.text(migrationId), .text("identities-")] + rowBinds)
            }
        }
    }

    static func requireMigration(_ session: any LedgerSession, _ id: String, operation: String) async throws {
        guard try await session.first("SELECT 1 FROM ledger_migrations WHERE migration_id = $1", [.text(id)]) != nil
        else { throw LedgerError(.notFound, operation: operation, "no migration \(id)") }
    }
}
