/// One versioned change to the ledger's tables.
struct SchemaMigration: Sendable {
    /// Applied in ascending order; never renumbered once released.
    let version: Int64
    /// What it does, recorded beside the version.
    let name: String
    /// DDL with `{BYTES}` and `{C}` placeholders (see ``SQLDialect/ddl(_:)``).
    let statements: [String]
    /// The backends the statements apply to; on the others the version is recorded with nothing run.
    var dialects: Set<SQLDialect> = [.postgres, .sqlite]
    /// Edits of SQLite tables' stored definitions, made after the statements, on SQLite only.
    var sqliteTableEdits: [SQLiteTableEdit] = []
}

/// A change to an SQLite table's stored `CREATE TABLE` text that leaves its rows' format alone,
/// such as dropping a foreign key, which SQLite's ALTER TABLE cannot do. It is made as SQLite's
/// documentation describes ("Making Other Kinds Of Table Schema Changes"): in the migration's
/// transaction, with `writable_schema` on, and the schema version incremented so that every
/// connection reads the new definition.
struct SQLiteTableEdit: Sendable {
    let table: String
    /// Text that must occur exactly once in the table's definition; anything else refuses the
    /// upgrade rather than guess.
    let replacing: String
    let with: String

    static func apply(_ edits: [SQLiteTableEdit], version: Int64, in session: any LedgerSession) async throws {
        guard !edits.isEmpty else { return }
        // The new version must be above every connection's cached one: never guess it.
        guard let schemaVersion = try await session.first("PRAGMA schema_version", [])?.int(0) else {
            throw LedgerError(
                .database, operation: "migrateSchema", "schema version \(version): SQLite returned no schema_version")
        }
        try await session.execute("PRAGMA writable_schema = ON", [])
        do {
            for edit in edits {
                let definition = try await session.first(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = $1", [.text(edit.table)])
                guard let text = try definition?.text(0), text.ranges(of: edit.replacing).count == 1 else {
                    throw LedgerError(
                        .database, operation: "migrateSchema",
                        "schema version \(version): the definition of table \(edit.table) does not contain "
                            + "\"\(edit.replacing)\" exactly once; this ledger's tables were changed by hand")
                }
                try await session.execute(
                    "UPDATE sqlite_schema SET sql = $2 WHERE type = 'table' AND name = $1",
                    [.text(edit.table), .text(text.replacing(edit.replacing, with: edit.with))])
            }
            try await session.execute("PRAGMA schema_version = \(schemaVersion + 1)", [])
        } catch {
            try? await session.execute("PRAGMA writable_schema = OFF", [])
            throw error
        }
        try await session.execute("PRAGMA writable_schema = OFF", [])
    }
}

/// The ledger's schema history. Append a new version to change the tables; never edit a released one.
enum LedgerSchema {
    /// The newest version this program knows; a ledger at a higher version is refused.
    static var currentVersion: Int64 { migrations.last?.version ?? 0 }

    static let migrations: [SchemaMigration] = [
        SchemaMigration(
            version: 1, name: "migrations, projects, scope, references, batches, mappings",
            statements: [
                """
                CREATE TABLE ledger_migrations (
                    migration_id TEXT{C} PRIMARY KEY,
                    site_id TEXT{C} NOT NULL,
                    options_json TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('saved', 'running', 'complete', 'incomplete', 'failed')),
                    phase TEXT NOT NULL CHECK (phase IN ('expand', 'migrate')),
                    batch_size BIGINT NOT NULL CHECK (batch_size > 0),
                    project_count BIGINT NOT NULL,
                    batch_count BIGINT,
                    identity_count BIGINT,
                    created_by TEXT NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    phase_changed_at_ms BIGINT,
                    batches_cut_at_ms BIGINT
                )
                """,
                "CREATE INDEX ledger_migrations_site ON ledger_migrations (site_id)",
                """
                CREATE TABLE ledger_projects (
                    migration_id TEXT{C} NOT NULL REFERENCES ledger_migrations (migration_id),
                    project_id BIGINT NOT NULL,
                    project_key TEXT NOT NULL,
                    project_name TEXT NOT NULL,
                    service_project BIGINT NOT NULL,
                    expanded_at_ms BIGINT,
                    issues_scanned BIGINT,
                    referenced_customers BIGINT,
                    referenced_licensed_users BIGINT,
                    referenced_formers BIGINT,
                    claimed_customers BIGINT,
                    claimed_licensed_users BIGINT,
                    claimed_formers BIGINT,
                    result {BYTES},
                    PRIMARY KEY (migration_id, project_id)
                )
                """,
                """
                CREATE TABLE ledger_scope (
                    migration_id TEXT{C} NOT NULL REFERENCES ledger_migrations (migration_id),
                    user_key TEXT{C} NOT NULL,
                    identity_class TEXT NOT NULL CHECK (identity_class IN ('customer', 'licensed_user', 'former')),
                    identity_kind TEXT NOT NULL
                        CHECK (identity_kind IN ('customer', 'licensed_user', 'deleted', 'inactive_directory')),
                    user_name TEXT NOT NULL,
                    display_name TEXT NOT NULL,
                    raw_email TEXT,
                    normalized_email TEXT{C} NOT NULL,
                    directory_id BIGINT,
                    directory_position BIGINT,
                    active BIGINT NOT NULL,
                    first_project_id BIGINT,
                    claimed_at_ms BIGINT NOT NULL,
                    batch_id TEXT{C},
                    batch_sequence BIGINT,
                    outcome TEXT
                        CHECK (outcome IN ('created', 'linked', 'former', 'rejected', 'already_migrated')),
                    flags BIGINT,
                    PRIMARY KEY (migration_id, user_key)
                )
                """,
                "CREATE INDEX ledger_scope_order ON ledger_scope (migration_id, normalized_email, user_key)",
                // Serves a batch's identities in message order without a sort and without scanning the scope.
                "CREATE INDEX ledger_scope_batch ON ledger_scope (migration_id, batch_id, normalized_email, user_key)",
                "CREATE INDEX ledger_scope_first_project ON ledger_scope (migration_id, first_project_id)",
                """
                CREATE TABLE ledger_project_references (
                    migration_id TEXT{C} NOT NULL,
                    project_id BIGINT NOT NULL,
                    user_key TEXT{C} NOT NULL,
                    PRIMARY KEY (migration_id, project_id, user_key),
                    FOREIGN KEY (migration_id, project_id) REFERENCES ledger_projects (migration_id, project_id),
                    FOREIGN KEY (migration_id, user_key) REFERENCES ledger_scope (migration_id, user_key)
                )
                """,
                "CREATE INDEX ledger_project_references_user ON ledger_project_references (migration_id, user_key)",
                """
                CREATE TABLE ledger_batches (
                    migration_id TEXT{C} NOT NULL REFERENCES ledger_migrations (migration_id),
                    batch_id TEXT{C} NOT NULL,
                    method TEXT NOT NULL,
                    sequence BIGINT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'parked', 'discarded')),
                    identity_count BIGINT NOT NULL,
                    attempts BIGINT NOT NULL DEFAULT 0,
                    first_attempt_at_ms BIGINT,
                    last_attempt_at_ms BIGINT,
                    completed_at_ms BIGINT,
                    last_error TEXT,
                    result {BYTES},
                    created_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (migration_id, batch_id),
                    UNIQUE (migration_id, method, sequence)
                )
                """,
                "CREATE INDEX ledger_batches_state ON ledger_batches (migration_id, state)",
                """
                CREATE TABLE ledger_mappings (
                    site_id TEXT{C} NOT NULL,
                    server_user_key TEXT{C} NOT NULL,
                    cloud_account_id TEXT,
                    account_type TEXT CHECK (account_type IN ('atlassian', 'customer')),
                    outcome TEXT NOT NULL CHECK (outcome IN ('created', 'linked', 'former', 'rejected')),
                    flags BIGINT NOT NULL,
                    reason TEXT,
                    migration_id TEXT{C} NOT NULL,
                    batch_id TEXT{C} NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (site_id, server_user_key),
                    CHECK (outcome NOT IN ('created', 'linked')
                        OR (cloud_account_id IS NOT NULL AND cloud_account_id <> '' AND account_type IS NOT NULL))
                )
                """,
                "CREATE INDEX ledger_mappings_migration ON ledger_mappings (migration_id)",
            ]),
        SchemaMigration(
            version: 2, name: "batch publication, so a crashed publisher resumes where it stopped",
            statements: [
                "ALTER TABLE ledger_batches ADD COLUMN published_at_ms BIGINT",
                "CREATE INDEX ledger_batches_unpublished ON ledger_batches (migration_id, published_at_ms, sequence)",
            ]),
        SchemaMigration(
            version: 3, name: "groups and memberships: candidates, scope, per-site mappings",
            statements: [
                // Every (group, user) pair the producer found in the source, groups resolved with the
                // groups they nest in; the cut keeps the pairs whose user is in scope.
                """
                CREATE TABLE ledger_group_candidates (
                    migration_id TEXT{C} NOT NULL REFERENCES ledger_migrations (migration_id),
                    lower_name TEXT{C} NOT NULL,
                    user_key TEXT{C} NOT NULL,
                    PRIMARY KEY (migration_id, lower_name, user_key)
                )
                """,
                "CREATE INDEX ledger_group_candidates_user ON ledger_group_candidates (migration_id, user_key)",
                // A migration's groups; those with a batch are in scope.
                """
                CREATE TABLE ledger_groups (
                    migration_id TEXT{C} NOT NULL REFERENCES ledger_migrations (migration_id),
                    lower_name TEXT{C} NOT NULL,
                    name TEXT NOT NULL,
                    directory_id BIGINT NOT NULL,
                    batch_id TEXT{C},
                    batch_sequence BIGINT,
                    outcome TEXT CHECK (outcome IN ('created', 'reused', 'already_migrated', 'rejected')),
                    cloud_group_id TEXT,
                    escalation_risk BIGINT NOT NULL DEFAULT 0,
                    detail TEXT,
                    PRIMARY KEY (migration_id, lower_name)
                )
                """,
                "CREATE INDEX ledger_groups_batch ON ledger_groups (migration_id, batch_id, lower_name)",
                """
                CREATE TABLE ledger_group_mappings (
                    site_id TEXT{C} NOT NULL,
                    lower_name TEXT{C} NOT NULL,
                    name TEXT NOT NULL,
                    cloud_group_id TEXT,
                    outcome TEXT NOT NULL CHECK (outcome IN ('created', 'reused', 'rejected')),
                    reason TEXT,
                    migration_id TEXT{C} NOT NULL,
                    batch_id TEXT{C} NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (site_id, lower_name),
                    CHECK (outcome = 'rejected' OR (cloud_group_id IS NOT NULL AND cloud_group_id <> ''))
                )
                """,
                """
                CREATE TABLE ledger_memberships (
                    migration_id TEXT{C} NOT NULL REFERENCES ledger_migrations (migration_id),
                    lower_name TEXT{C} NOT NULL,
                    user_key TEXT{C} NOT NULL,
                    batch_id TEXT{C} NOT NULL,
                    batch_sequence BIGINT NOT NULL,
                    outcome TEXT CHECK (outcome IN ('added', 'already_member', 'already_migrated', 'skipped_no_account',
                        'skipped_customer_account', 'skipped_no_group', 'rejected')),
                    detail TEXT,
                    PRIMARY KEY (migration_id, lower_name, user_key)
                )
                """,
                "CREATE INDEX ledger_memberships_batch ON ledger_memberships (migration_id, batch_id, lower_name, user_key)",
                """
                CREATE TABLE ledger_membership_mappings (
                    site_id TEXT{C} NOT NULL,
                    lower_name TEXT{C} NOT NULL,
                    user_key TEXT{C} NOT NULL,
                    cloud_group_id TEXT NOT NULL,
                    cloud_account_id TEXT NOT NULL,
                    outcome TEXT NOT NULL CHECK (outcome IN ('added', 'already_member')),
                    migration_id TEXT{C} NOT NULL,
                    batch_id TEXT{C} NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (site_id, lower_name, user_key)
                )
                """,
            ]),
        SchemaMigration(
            version: 4, name: "scope indexes hold only the rows they serve, so claims write two b-trees fewer",
            statements: [
                // Claims insert rows without a batch, and `all` claims without a first project: those
                // rows are never looked up by these indexes (queries compare the column with `=`, which
                // implies IS NOT NULL on both SQLite and PostgreSQL), so they need no entry.
                "DROP INDEX ledger_scope_batch",
                """
                CREATE INDEX ledger_scope_batch ON ledger_scope (migration_id, batch_id, normalized_email, user_key)
                WHERE batch_id IS NOT NULL
                """,
                "DROP INDEX ledger_scope_first_project",
                """
                CREATE INDEX ledger_scope_first_project ON ledger_scope (migration_id, first_project_id)
                WHERE first_project_id IS NOT NULL
                """,
            ]),
        SchemaMigration(
            version: 5, name: "a publisher leases the batches it sends, so two publishers never send one twice",
            statements: [
                "ALTER TABLE ledger_batches ADD COLUMN publish_lease_until_ms BIGINT"
            ]),
        SchemaMigration(
            version: 6,
            name: "the scope's email order holds only undecided identities, so a re-run claims into no second index",
            statements: [
                // Only the cut reads this order, and only for identities not settled yet (its pass
                // and the email-group check both say `outcome IS NULL`). A re-run over a migrated
                // scope settles every identity as it claims it, so its rows need no entry; a worker
                // settling a batch removes that batch's entries, which sit together in this order.
                "DROP INDEX ledger_scope_order",
                """
                CREATE INDEX ledger_scope_order ON ledger_scope (migration_id, normalized_email, user_key)
                WHERE outcome IS NULL
                """,
            ]),
        SchemaMigration(
            version: 7,
            name:
                "on PostgreSQL the scope's email order holds only identities awaiting the cut, so the cut writes no entry",
            statements: [
                // The cut gives every undecided identity its batch; PostgreSQL writes a new version
                // of each row, which under `outcome IS NULL` alone got a second entry here that
                // nothing reads (1M identities: 5.3 million WAL records against 4.2 million; the
                // cut's UPDATE 38.5-42 s against 28.6-29.5 s). Every reader of this order runs
                // before the cut (``Ledger/awaitingCut(_:alias:)``). SQLite keeps version 6's index: it
                // rewrites a row in place, and would have to delete each row's entry at the cut
                // instead of when a worker settles the row.
                "DROP INDEX ledger_scope_order",
                """
                CREATE INDEX ledger_scope_order ON ledger_scope (migration_id, normalized_email, user_key)
                WHERE outcome IS NULL AND batch_id IS NULL
                """,
            ],
            dialects: [.postgres]),
        SchemaMigration(
            version: 8, name: "the scope marks the identities settled as they were claimed",
            statements: [
                // 1 for an identity the claim settled (an earlier migration mapped it on the site),
                // NULL otherwise, and NULL again when the cut sends it to a batch with its email.
                // PostgreSQL's email order (version 9) tells those rows apart by it.
                "ALTER TABLE ledger_scope ADD COLUMN settled_at_claim BIGINT"
            ]),
        SchemaMigration(
            version: 9,
            name: "on PostgreSQL a worker's outcome update of a scope row is a HOT update that writes no index entry",
            statements: [
                // A worker settling its batch updates `outcome` and `flags` of each row. The email
                // order's condition named `outcome`, so PostgreSQL could never update in place (HOT):
                // every update wrote a new entry in each of the scope's indexes (93 s and 1.2 GB of
                // WAL for 1M identities). The condition now names `settled_at_claim` instead, which
                // only claims and the cut write, and pages are filled half at insert so that the
                // cut's and then the worker's version of a row fit on the row's page (psql, 300,000
                // identities in 600 batches: 273,000 of 300,000 updates HOT, 1.8-2.8 s and 40-45 MB
                // of WAL against 7.6-8.6 s and 156-182 MB; claims 3.7-4.5 s against 3.0-3.2 s, the
                // cut 5.9-6.0 s against 5.2-5.4 s). Rows already in the table keep their pages.
                "ALTER TABLE ledger_scope SET (fillfactor = 50)",
                "DROP INDEX ledger_scope_order",
                """
                CREATE INDEX ledger_scope_order ON ledger_scope (migration_id, normalized_email, user_key)
                WHERE batch_id IS NULL AND settled_at_claim IS NULL
                """,
            ],
            dialects: [.postgres]),
        SchemaMigration(
            version: 10,
            name: "claims check no foreign key per row: the scope has no key to its migration",
            statements: [
                // PostgreSQL checks an immediate foreign key with a trigger per inserted row: 500,000
                // rows took 5.6-6.8 s with it against 2.4-2.8 s without (psql, one INSERT).
                "ALTER TABLE ledger_scope DROP CONSTRAINT ledger_scope_migration_id_fkey"
            ],
            dialects: [.postgres],
            // On SQLite, the key makes every multi-row INSERT open a statement journal, copying each
            // page the statement touches first, so that a violation can undo the statement alone.
            // The claims insert a million rows 500 at a time: without the key and with `INSERT OR
            // FAIL` (which needs no undo for NOT NULL and CHECK), a 1M re-run's `jsm-migrate start`
            // took 32.5-33.8 s in four runs against 34.8-40.1 s, its system time 3.1-3.5 s against
            // 5.5-6.6 s. A deferred key cost as much. On both databases, the only writer of scope
            // rows, the claim, reads its migration in the same transaction and refuses one that does
            // not exist, and no migration is ever deleted.
            sqliteTableEdits: [
                SQLiteTableEdit(
                    table: "ledger_scope",
                    replacing: "migration_id TEXT NOT NULL REFERENCES ledger_migrations (migration_id),",
                    with: "migration_id TEXT NOT NULL,")
            ]),
    ]
}
