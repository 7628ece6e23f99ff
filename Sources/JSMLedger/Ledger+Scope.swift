import JSMDomain

extension Ledger {
    /// Rows per set-based statement: one UNNEST (PostgreSQL) or VALUES list (SQLite) per 500 rows.
    static let bulkRowLimit = 500

    /// Claims identities into a migration's scope, in one transaction. A claim is idempotent:
    /// an identity already claimed (by any project, or by the producer) is not counted again, so
    /// each identity is in scope once however many projects reference it or how often a message
    /// is delivered. With a `projectId`, the identities are also recorded as that project's
    /// references, the base of its per-project totals.
    ///
    /// - Parameters:
    ///   - projectId: the selected project whose issues reference the identities; `nil` for the
    ///     producer's claims of the `all` options.
    ///   - identities: in-scope identities; a user key given twice counts once.
    /// - Throws: `invalidRequest` once the scope has been cut into batches (a late claim would be
    ///   in no batch), `notFound` for an unknown migration or project.
    @discardableResult
    public func claimScope(
        migrationId: String, projectId: Int64? = nil, identities: [ServerIdentity]
    ) async throws(LedgerError) -> ScopeClaim {
        let operation = "claimScope"
        var seen = Set<String>(minimumCapacity: identities.count)
        // Kept in the caller's order, not sorted by user key: sorted claims wrote a 1M re-run's
        // claims faster (24.4 s against 27.0 s end to end) but lay the table out in key order, so
        // a worker's batch (an email range) touches pages all over it; the workers' CPU rose
        // (148-150 s against 142-146 s in runs without), more than the re-run gained.
        let unique = identities.filter { seen.insert($0.userKey).inserted }
        let now = self.now()
        // The statements and their values are built before the transaction, and run in one turn
        // of the ledger's connection (``LedgerSession/queryEach(_:leading:)``): built and run one
        // by one inside it, the connection waited for each statement's values and for this task
        // to be scheduled again (a 1M re-run's claims kept it busy three quarters of the time).
        // A caller with the next claim in flight builds it while this one writes.
        let dialect = database.dialect
        let chunks = unique.chunked(Ledger.bulkRowLimit)
        let claims = chunks.map { chunk in
            let (with, binds) = dialect.withRows(Ledger.claimRows(chunk), firstParameter: 6)
            return BoundStatement(sql: with + Ledger.claimInsert(dialect), binds: binds)
        }
        let references: [BoundStatement] =
            projectId == nil
            ? []
            : chunks.map { chunk in
                var rows = BulkRows([("user_key", .text)])
                for identity in chunk { rows.append([.text(identity.userKey)]) }
                let (with, binds) = dialect.withRows(rows, firstParameter: 3)
                return BoundStatement(
                    sql: with + """
                         INSERT INTO ledger_project_references (migration_id, project_id, user_key)
                        SELECT $1, CAST($2 AS BIGINT), user_key FROM u WHERE true
                        ON CONFLICT (migration_id, project_id, user_key) DO NOTHING
                        """, binds: binds)
            }
        return try await database.transaction(operation) { session in
            guard
                let phase = try await session.first(
                    "SELECT phase, site_id FROM ledger_migrations WHERE migration_id = $1" + session.dialect.forShare,
                    [.text(migrationId)])
            else { throw LedgerError(.notFound, operation: operation, "no migration \(migrationId)") }
            let siteId = try phase.text(1)
            guard try phase.text(0) == MigrationPhase.expand.rawValue else {
                throw LedgerError(
                    .invalidRequest, operation: operation,
                    "migration \(migrationId) is past its expand phase: its scope is cut and closed to claims")
            }
            if let projectId {
                try await Ledger.requireProject(session, migrationId, projectId, operation: operation)
            }
            // An identity an earlier migration created or linked on this site is settled
            // `already_migrated` as it is claimed (row 1 of the rules, `disabled` when inactive),
            // so a re-run does not rewrite every scope row at the cut; the cut returns an email
            // group to the batches when one of its identities is undecided. A mapping, once
            // created or linked, never changes, so deciding now or at the cut is the same.
            let inserted = try await session.queryEach(
                claims,
                leading: [
                    .text(migrationId), .optionalInt(projectId), .int(now), .text(siteId),
                    .int(Int64(OutcomeFlags.disabled.rawValue)),
                ])
            var counts = ScopeCounts()
            for row in inserted.joined() {
                switch ScopeCategory(rawValue: try row.text(0)) {
                case .customer: counts.customers += 1
                case .licensedUser: counts.licensedUsers += 1
                case .former: counts.formers += 1
                case nil: break
                }
            }
            if let projectId, !references.isEmpty {
                // After every claim of the call: a reference's key must be in the scope already.
                _ = try await session.queryEach(references, leading: [.text(migrationId), .int(projectId)])
            }
            return ScopeClaim(newlyClaimed: counts, identitiesGiven: unique.count)
        }
    }

    /// The rows `u` of ``claimInsert(_:)``, one per identity.
    static func claimRows(_ identities: some Sequence<ServerIdentity>) -> BulkRows {
        var rows = BulkRows([
            ("user_key", .text), ("identity_class", .text), ("identity_kind", .text), ("user_name", .text),
            ("display_name", .text), ("raw_email", .optionalText), ("normalized_email", .text),
            ("directory_id", .optionalInt), ("directory_position", .optionalInt), ("active", .int),
        ])
        for identity in identities {
            rows.append([
                .text(identity.userKey), .text(ScopeCategory(identity.kind).rawValue),
                .text(identity.kind.rawValue), .text(identity.userName), .text(identity.displayName),
                .optionalText(identity.rawEmail), .text(identity.email?.value ?? ""),
                .optionalInt(identity.directoryId), .optionalInt(identity.directoryPosition.map(Int64.init)),
                .int(identity.isActive ? 1 : 0),
            ])
        }
        return rows
    }

    /// The claim's INSERT of the rows `u` into the scope: $1 migration, $2 first project, $3 now,
    /// $4 site, $5 the `disabled` flag. An identity an earlier migration created or linked on the
    /// site is inserted settled, and marked `settled_at_claim`. On PostgreSQL each identity probes
    /// its own mapping (a `LATERAL` subquery, as ``priorMappingsSelect(_:)`` does): as a plain join,
    /// planned with the statistics of a mapping table analysed while nearly empty, it read every
    /// mapping of the site for each statement of 500 claims (psql, 200,000 mappings: 184 ms against
    /// a few). SQLite probes the key, and fails the statement without undoing its earlier rows on a
    /// NOT NULL or CHECK violation (`OR FAIL`; the transaction is rolled back then anyway): with no
    /// foreign key on the table either (schema version 10), SQLite opens no statement journal.
    static func claimInsert(_ dialect: SQLDialect) -> String {
        let mapped: String
        let insert: String
        switch dialect {
        case .postgres:
            insert = "INSERT"
            // LIMIT 1 keeps PostgreSQL from turning the subquery back into that join (the key is
            // the primary key, so it drops nothing).
            mapped = """
                LEFT JOIN LATERAL (
                    SELECT l.server_user_key FROM ledger_mappings l
                    WHERE l.site_id = $4 AND l.server_user_key = u.user_key AND l.outcome IN ('created', 'linked')
                    LIMIT 1) m ON true
                """
        case .sqlite:
            insert = "INSERT OR FAIL"
            mapped = """
                LEFT JOIN ledger_mappings m ON m.site_id = $4 AND m.server_user_key = u.user_key
                    AND m.outcome IN ('created', 'linked')
                """
        }
        return """
             \(insert) INTO ledger_scope (migration_id, user_key, identity_class, identity_kind, user_name,
                display_name, raw_email, normalized_email, directory_id, directory_position, active,
                first_project_id, claimed_at_ms, outcome, flags, settled_at_claim)
            SELECT $1, u.user_key, u.identity_class, u.identity_kind, u.user_name, u.display_name,
                u.raw_email, u.normalized_email, u.directory_id, u.directory_position, u.active,
                CAST($2 AS BIGINT), CAST($3 AS BIGINT),
                CASE WHEN m.server_user_key IS NULL THEN NULL ELSE 'already_migrated' END,
                CASE WHEN m.server_user_key IS NULL THEN NULL
                     WHEN u.active = 0 THEN CAST($5 AS BIGINT) ELSE 0 END,
                CASE WHEN m.server_user_key IS NULL THEN NULL ELSE 1 END
            FROM u \(mapped)
            WHERE true
            ON CONFLICT (migration_id, user_key) DO NOTHING
            RETURNING identity_class
            """
    }

    /// Records that a project is expanded, once: its reference and first-claim counts are
    /// computed from the ledger's rows, `makeResult` builds the `ProjectResult` bytes from them,
    /// and both are stored. A redelivered expansion changes nothing and gets the stored bytes.
    public func recordProjectExpanded(
        migrationId: String, projectId: Int64, issuesScanned: Int64,
        makeResult: @escaping @Sendable (ProjectExpansion) throws -> [UInt8]
    ) async throws(LedgerError) -> ProjectExpansionRecord {
        let operation = "recordProjectExpanded"
        let now = self.now()
        return try await database.transaction(operation) { session in
            let forUpdate = session.dialect == .postgres ? " FOR UPDATE" : ""
            guard
                let project = try await session.first(
                    """
                    SELECT expanded_at_ms, issues_scanned, referenced_customers, referenced_licensed_users,
                        referenced_formers, claimed_customers, claimed_licensed_users, claimed_formers, result
                    FROM ledger_projects WHERE migration_id = $1 AND project_id = $2
                    """ + forUpdate, [.text(migrationId), .int(projectId)])
            else {
                throw LedgerError(
                    .notFound, operation: operation, "no project \(projectId) in migration \(migrationId)")
            }
            if project.optionalInt(0) != nil {
                let expansion = ProjectExpansion(
                    projectId: projectId,
                    referenced: ScopeCounts(
                        customers: Int(try project.int(2)), licensedUsers: Int(try project.int(3)),
                        formers: Int(try project.int(4))),
                    claimed: ScopeCounts(
                        customers: Int(try project.int(5)), licensedUsers: Int(try project.int(6)),
                        formers: Int(try project.int(7))),
                    issuesScanned: try project.int(1))
                return ProjectExpansionRecord(
                    expansion: expansion, result: project.optionalBytes(8) ?? [], replayed: true)
            }
            let referenced = try await Ledger.countsByCategory(
                session,
                """
                SELECT s.identity_class, COUNT(*) FROM ledger_project_references r
                JOIN ledger_scope s ON s.migration_id = r.migration_id AND s.user_key = r.user_key
                WHERE r.migration_id = $1 AND r.project_id = $2 GROUP BY s.identity_class
                """, [.text(migrationId), .int(projectId)])
            let claimed = try await Ledger.countsByCategory(
                session,
                """
                SELECT identity_class, COUNT(*) FROM ledger_scope
                WHERE migration_id = $1 AND first_project_id = $2 GROUP BY identity_class
                """, [.text(migrationId), .int(projectId)])
            let expansion = ProjectExpansion(
                projectId: projectId, referenced: referenced, claimed: claimed, issuesScanned: issuesScanned)
            let result = try makeResult(expansion)
            try await session.execute(
                """
                UPDATE ledger_projects SET expanded_at_ms = $3, issues_scanned = $4,
                    referenced_customers = $5, referenced_licensed_users = $6, referenced_formers = $7,
                    claimed_customers = $8, claimed_licensed_users = $9, claimed_formers = $10, result = $11
                WHERE migration_id = $1 AND project_id = $2
                """,
                [
                    .text(migrationId), .int(projectId), .int(now), .int(issuesScanned),
                    .int(Int64(referenced.customers)), .int(Int64(referenced.licensedUsers)),
                    .int(Int64(referenced.formers)), .int(Int64(claimed.customers)),
                    .int(Int64(claimed.licensedUsers)), .int(Int64(claimed.formers)), .bytes(result),
                ])
            return ProjectExpansionRecord(expansion: expansion, result: result, replayed: false)
        }
    }

    /// Selected projects not expanded yet, by id: what the aggregator waits for.
    public func pendingProjects(migrationId: String) async throws(LedgerError) -> [Int64] {
        try await database.transaction("pendingProjects", readOnly: true) { session in
            try await session.query(
                """
                SELECT project_id FROM ledger_projects WHERE migration_id = $1 AND expanded_at_ms IS NULL
                ORDER BY project_id
                """, [.text(migrationId)]
            ).map { row throws in try row.int(0) }
        }
    }

    static func countsByCategory(_ session: any LedgerSession, _ sql: String, _ binds: [SQLValue]) async throws
        -> ScopeCounts
    {
        var counts = ScopeCounts()
        for row in try await session.query(sql, binds) {
            let count = Int(try row.int(1))
            switch ScopeCategory(rawValue: try row.text(0)) {
            case .customer: counts.customers += count
            case .licensedUser: counts.licensedUsers += count
            case .former: counts.formers += count
            case nil: break
            }
        }
        return counts
    }

    static func requireProject(
        _ session: any LedgerSession, _ migrationId: String, _ projectId: Int64, operation: String
    ) async throws {
        guard
            try await session.first(
                "SELECT 1 FROM ledger_projects WHERE migration_id = $1 AND project_id = $2",
                [.text(migrationId), .int(projectId)]) != nil
        else {
            throw LedgerError(.notFound, operation: operation, "no project \(projectId) in migration \(migrationId)")
        }
    }
}
