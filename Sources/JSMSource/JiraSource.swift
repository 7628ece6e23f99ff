import JSMDomain

/// A Jira Server/DC database, read through SQL both PostgreSQL and SQLite accept, turned into the
/// domain's rows and identities.
///
/// All the adapter's SQL lives here, written once; ``StreamingSQLDatabase`` runs it on either
/// backend. Everything that grows with the number of users or issues is streamed; only the
/// directories and the licensing catalog (groups, nesting, licence and permission rows, small
/// next to users) are loaded whole.
public struct JiraSource: Sendable {
    /// The database the tables live in.
    public let database: any StreamingSQLDatabase

    /// Reads the Jira tables of `database`; call ``checkSchema()`` before the first read.
    public init(database: any StreamingSQLDatabase) {
        self.database = database
    }

    // MARK: - Schema

    /// Fails with one ``SourceError`` naming every missing table and column, so an operator pointing
    /// the tool at the wrong database learns it before anything is published.
    public func checkSchema() async throws {
        let statement: SQLStatement
        switch database.dialect {
        case .postgres:
            if let schema = database.schema {
                statement = SQLStatement(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1",
                    binds: [.text(schema)])
            } else {
                statement = SQLStatement(
                    "SELECT table_name, column_name FROM information_schema.columns "
                        + "WHERE table_schema = current_schema()")
            }
        case .sqlite:
            statement = SQLStatement(
                "SELECT m.name, p.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p "
                    + "WHERE m.type IN ('table', 'view')")
        }
        var present: [(String, String)] = []
        for try await record in database.rows(statement) {
            guard let table = record.text(0), let column = record.text(1) else { continue }
            present.append((table, column))
        }
        let missing = JiraSchema.missing(present: present, caseInsensitive: database.dialect == .sqlite)
        guard missing.isEmpty else {
            let place = database.schema.map { " in schema \($0)" } ?? ""
            throw SourceError(
                .missingSchemaObject,
                "the source is not a Jira database this adapter can read\(place): missing "
                    + missing.map(\.description).joined(separator: ", "),
                missing: missing)
        }
    }

    // MARK: - Licensing catalog

    /// Loads directories and the licensing catalog once, for the per-user classification.
    public func loadClassifier() async throws -> IdentityClassifier {
        let directories = try await database.collect(
            SQLStatement(
                "SELECT CAST(id AS BIGINT), directory_name, CAST(active AS BIGINT), CAST(directory_position AS BIGINT) "
                    + "FROM \(t("cwd_directory")) ORDER BY id")
        ).map { record in
            DirectoryRow(
                id: record.integer(0) ?? -1, name: record.text(1) ?? "", isActive: (record.integer(2) ?? 1) != 0,
                position: Int(record.integer(3) ?? Int64(Int32.max)))
        }
        var groups: [GroupRow] = []
        for try await group in self.groups() { groups.append(group) }
        let nesting = try await database.collect(
            SQLStatement(
                "SELECT CAST(id AS BIGINT), CAST(parent_id AS BIGINT), CAST(child_id AS BIGINT), "
                    + "CAST(directory_id AS BIGINT) FROM \(t("cwd_membership")) "
                    + "WHERE membership_type = 'GROUP_GROUP' ORDER BY id")
        ).map { record in
            MembershipRow(
                id: record.integer(0) ?? -1, parentId: record.integer(1) ?? -1, childId: record.integer(2) ?? -1,
                type: .groupGroup, directoryId: record.integer(3) ?? -1)
        }
        let licenseRoles = try await database.collect(
            SQLStatement("SELECT license_role_name, group_id FROM \(t("licenserolesgroup")) ORDER BY id")
        ).compactMap { record in
            record.text(1).map { LicenseRoleGroupRow(licenseRoleName: record.text(0) ?? "", groupName: $0) }
        }
        let permissions = try await database.collect(
            SQLStatement("SELECT permission, group_id FROM \(t("globalpermissionentry")) ORDER BY id")
        ).compactMap { record in
            record.text(1).map { GlobalPermissionRow(permission: record.text(0) ?? "", groupName: $0) }
        }
        let catalog = LicensingCatalog(
            groups: groups, groupMemberships: nesting, licenseRoleGroups: licenseRoles, globalPermissions: permissions)
        return IdentityClassifier(directories: directories, licensing: catalog)
    }

    // MARK: - Identities

    /// Every identity of the source, classified, streamed: each `cwd_user` name (with its
    /// `app_user` key, or its lower-cased name when it has none), then each `app_user` with no
    /// directory user (deleted), then each user key data references that the source does not know
    /// (deleted). Per-user anomalies travel with the identity; see ``sourceAnomalies(classifier:)``
    /// for those that belong to no identity.
    public func classifiedIdentities(classifier: IdentityClassifier) -> ClassifiedIdentityStream {
        ClassifiedIdentityStream(source: self, classifier: classifier, directoryUsersOnly: false)
    }

    /// The identities of ``classifiedIdentities(classifier:)`` that have a directory user: each
    /// `cwd_user` name, classified. The identities it leaves out (an `app_user` with no directory
    /// user, a key only data references) have no source rows: they classify as `deleted`, with no
    /// anomaly and no group, so the `all` options never take them (a former is in scope only when
    /// a project references it) and a group migration gets no candidate from them. Reading them
    /// took two statements over `app_user`, the issues and the participants after the directory
    /// users (6.8 s in sqlite3 at 1,070,000 users), while nothing else was left to do.
    public func classifiedDirectoryUsers(classifier: IdentityClassifier) -> ClassifiedIdentityStream {
        ClassifiedIdentityStream(source: self, classifier: classifier, directoryUsersOnly: true)
    }

    /// Classifies the given user keys (for instance those a project references), in their order.
    ///
    /// - Parameter userKeys: at most ``maximumKeysPerLookup`` keys; a larger set is a caller bug.
    public func classify(userKeys: [String], classifier: IdentityClassifier) async throws -> [ClassifiedIdentity] {
        guard userKeys.count <= Self.maximumKeysPerLookup else {
            throw SourceError(
                .invalidRequest, "\(userKeys.count) keys in one lookup; at most \(Self.maximumKeysPerLookup)")
        }
        guard !userKeys.isEmpty else { return [] }
        let placeholders = (1...userKeys.count).map { "$\($0)" }.joined(separator: ", ")
        let binds = userKeys.map { SQLValue.text($0) }
        var grouper = UserRowGrouper()
        var rowsByKey: [String: UserSourceRows] = [:]
        let statement = SQLStatement(
            Self.userRowsSelect(self)
                + " WHERE u.lower_user_name IN (SELECT k.lower_user_name FROM \(t("app_user")) AS k "
                + "WHERE k.user_key IN (\(placeholders))) "
                + "OR (u.lower_user_name IN (\(placeholders)) AND NOT EXISTS (SELECT 1 FROM \(t("app_user")) AS n "
                + "WHERE n.lower_user_name = u.lower_user_name)) "
                + Self.userRowsOrder,
            binds: binds)
        for try await record in database.rows(statement) {
            if let rows = grouper.add(record) { rowsByKey[rows.userKey] = rows }
        }
        if let rows = grouper.flush() { rowsByKey[rows.userKey] = rows }
        var appUsers: [String: AppUserRow] = [:]
        let appStatement = SQLStatement(
            "SELECT CAST(id AS BIGINT), user_key, lower_user_name FROM \(t("app_user")) "
                + "WHERE user_key IN (\(placeholders))",
            binds: binds)
        for try await record in database.rows(appStatement) {
            guard let key = record.text(1) else { continue }
            appUsers[key] = AppUserRow(id: record.integer(0) ?? -1, userKey: key, lowerUserName: record.text(2) ?? "")
        }
        return userKeys.map { key in
            let rows =
                rowsByKey[key] ?? UserSourceRows(userKey: key, appUser: appUsers[key], users: [], memberships: [])
            return classifier.classify(rows)
        }
    }

    /// The most user keys ``classify(userKeys:classifier:)`` takes at once (each is bound twice;
    /// both backends accept far more parameters, this keeps statements a reasonable size).
    public static let maximumKeysPerLookup = 1_000

    /// The most characters of `cwd_user.display_name` the adapter reads. A display name is
    /// cosmetic and Atlassian accepts at most 255 characters, so a longer one is refused by the
    /// site whatever its length (the identity is rejected `site_refused` and reported); reading
    /// only this much keeps a damaged or hostile row (megabytes of name) from inflating the
    /// claims, the ledger and the batch messages towards the broker's message size limit.
    public static let displayNameCharacterLimit = 1_024

    /// User memberships naming a user `cwd_user` lacks: they belong to no classified identity, so
    /// they are reported here, with the user key their `lower_child_name` resolves to (or that name)
    /// so the row can be found. Nested memberships naming missing groups are in the classifier's
    /// `licensing.anomalies`.
    public func danglingUserMemberships() -> AsyncThrowingMapSequence<SQLRowStream, SourceAnomaly> {
        let statement = SQLStatement(
            "SELECT CAST(m.id AS BIGINT), CAST(m.parent_id AS BIGINT), CAST(m.child_id AS BIGINT), m.lower_child_name, "
                + "a.user_key FROM \(t("cwd_membership")) AS m "
                + "LEFT JOIN \(t("app_user")) AS a ON a.lower_user_name = m.lower_child_name "
                + "WHERE m.membership_type = 'GROUP_USER' AND NOT EXISTS "
                + "(SELECT 1 FROM \(t("cwd_user")) AS u WHERE u.id = m.child_id) ORDER BY m.id")
        return database.rows(statement).map { record in
            let name = record.text(3)
            return SourceAnomaly(
                kind: .danglingMembership, userKey: record.text(4) ?? name,
                detail: "cwd_membership \(record.integer(0) ?? -1) puts user \(record.integer(2) ?? -1) "
                    + "('\(name ?? "")'), which cwd_user lacks, in group \(record.integer(1) ?? -1)")
        }
    }

    /// User keys that reported an issue in any service project: `--customers all` takes these.
    public func requestReporters() -> AsyncThrowingCompactMapSequence<SQLRowStream, String> {
        database.rows(
            SQLStatement(
                "SELECT DISTINCT i.reporter FROM \(t("jiraissue")) AS i JOIN \(t("project")) AS p ON p.id = i.project "
                    + "WHERE p.projecttype = 'service_desk' AND i.reporter IS NOT NULL AND i.reporter <> '' "
                    + "ORDER BY i.reporter")
        ).compactMap { $0.text(0) }
    }

    // MARK: - Projects

    /// Every project, for the operator to select from and for scope validation.
    public func projects() async throws -> [SelectedProject] {
        try await database.collect(
            SQLStatement("SELECT CAST(id AS BIGINT), pkey, pname, projecttype FROM \(t("project")) ORDER BY pkey")
        ).map { record in
            SelectedProject(
                id: record.integer(0) ?? -1, key: record.text(1) ?? "", name: record.text(2) ?? "",
                projectType: record.text(3))
        }
    }

    /// Every user one project's issues reference, each `(user key, role)` once, streamed: reporters,
    /// creators, assignees, request participants, and the members of the organizations its requests
    /// are shared with.
    public func relatedIdentities(of project: SelectedProject) -> AsyncThrowingCompactMapSequence<
        SQLRowStream, IdentityReference
    > {
        let issues = t("jiraissue")
        let values = t("customfieldvalue")
        let fields = t("customfield")
        let members = t("AO_54307E_ORGANIZATION_MEMBER")
        func field(_ type: String) -> String {
            "FROM \(values) AS v JOIN \(issues) AS i ON i.id = v.issue JOIN \(fields) AS f ON f.id = v.customfield "
                + "WHERE i.project = $1 AND f.customfieldtypekey = '\(type)'"
        }
        let sql =
            "SELECT DISTINCT r.user_key, r.role FROM ("
            + "SELECT reporter AS user_key, 'reporter' AS role FROM \(issues) WHERE project = $1 "
            + "UNION ALL SELECT creator, 'creator' FROM \(issues) WHERE project = $1 "
            + "UNION ALL SELECT assignee, 'assignee' FROM \(issues) WHERE project = $1 "
            + "UNION ALL SELECT v.stringvalue, 'request_participant' "
            + field(JiraSchema.requestParticipantsFieldType)
            + " UNION ALL SELECT om.\"USER_KEY\", 'organization_member' "
            + "FROM \(members) AS om JOIN (SELECT DISTINCT TRIM(v.stringvalue) AS organization "
            + field(JiraSchema.customerOrganizationsFieldType)
            + ") AS shared ON shared.organization = CAST(om.\"ORGANIZATION_ID\" AS VARCHAR(40))"
            + ") AS r WHERE r.user_key IS NOT NULL AND r.user_key <> '' ORDER BY r.user_key, r.role"
        return database.rows(SQLStatement(sql, binds: [.integer(project.id)])).compactMap { record in
            guard let key = record.text(0), let role = record.text(1).flatMap(ReferenceRole.init(rawValue:)) else {
                return nil
            }
            return IdentityReference(userKey: key, role: role)
        }
    }

    // MARK: - Groups

    /// Every group, streamed by directory and name (for group batches).
    public func groups() -> AsyncThrowingMapSequence<SQLRowStream, GroupRow> {
        database.rows(
            SQLStatement(
                "SELECT CAST(id AS BIGINT), group_name, lower_group_name, CAST(active AS BIGINT), "
                    + "CAST(directory_id AS BIGINT) FROM \(t("cwd_group")) ORDER BY directory_id, lower_group_name, id")
        ).map { record in
            let name = record.text(1) ?? record.text(2) ?? ""
            return GroupRow(
                id: record.integer(0) ?? -1, name: name, lowerName: record.text(2) ?? name.lowercased(),
                isActive: (record.integer(3) ?? 1) != 0, directoryId: record.integer(4) ?? -1)
        }
    }

    /// Every membership, both types, streamed by id, with the names and (for users) the user key
    /// a group batch needs.
    public func memberships() -> AsyncThrowingMapSequence<SQLRowStream, SourceMembership> {
        database.rows(
            SQLStatement(
                "SELECT CAST(m.id AS BIGINT), CAST(m.parent_id AS BIGINT), CAST(m.child_id AS BIGINT), "
                    + "m.membership_type, CAST(m.directory_id AS BIGINT), m.parent_name, m.child_name, "
                    + "m.lower_child_name, a.user_key FROM \(t("cwd_membership")) AS m "
                    + "LEFT JOIN \(t("app_user")) AS a ON m.membership_type = 'GROUP_USER' "
                    + "AND a.lower_user_name = m.lower_child_name ORDER BY m.id")
        ).map { record in
            let type = record.text(3).flatMap(MembershipType.init(rawValue:)) ?? .groupUser
            let lowerChild = record.text(7)
            return SourceMembership(
                row: MembershipRow(
                    id: record.integer(0) ?? -1, parentId: record.integer(1) ?? -1, childId: record.integer(2) ?? -1,
                    type: type, directoryId: record.integer(4) ?? -1),
                groupName: record.text(5) ?? "", childName: record.text(6) ?? lowerChild ?? "",
                userKey: type == .groupUser ? (record.text(8) ?? lowerChild) : nil)
        }
    }

    // MARK: - Statements shared by the streams

    /// The quoted, qualified name of a table.
    func t(_ name: String) -> String { database.table(name) }

    /// One row per directory user and user membership, in the column order ``UserRowGrouper`` reads.
    static func userRowsSelect(_ source: JiraSource) -> String {
        "SELECT CAST(u.id AS BIGINT), CAST(u.directory_id AS BIGINT), u.user_name, u.lower_user_name, "
            + "CAST(u.active AS BIGINT), SUBSTR(u.display_name, 1, \(displayNameCharacterLimit)), u.email_address, "
            + "CAST(a.id AS BIGINT), a.user_key, "
            + "CAST(m.id AS BIGINT), CAST(m.parent_id AS BIGINT), CAST(m.directory_id AS BIGINT) "
            + "FROM \(source.t("cwd_user")) AS u "
            + "LEFT JOIN \(source.t("app_user")) AS a ON a.lower_user_name = u.lower_user_name "
            + "LEFT JOIN \(source.t("cwd_membership")) AS m ON m.child_id = u.id AND m.membership_type = 'GROUP_USER'"
    }

    /// Keeps every row of one user name adjacent.
    static let userRowsOrder = "ORDER BY u.lower_user_name, u.id, m.id"

    var allUserRows: SQLStatement { SQLStatement(Self.userRowsSelect(self) + " " + Self.userRowsOrder) }

    var appUsersWithoutDirectoryUser: SQLStatement {
        SQLStatement(
            "SELECT CAST(a.id AS BIGINT), a.user_key, a.lower_user_name FROM \(t("app_user")) AS a "
                + "WHERE NOT EXISTS (SELECT 1 FROM \(t("cwd_user")) AS u WHERE u.lower_user_name = a.lower_user_name) "
                + "ORDER BY a.user_key")
    }

    /// User keys referenced by issues, participants or organizations that name neither an `app_user`
    /// nor a directory user without one.
    var unknownReferencedKeys: SQLStatement {
        let issues = t("jiraissue")
        return SQLStatement(
            "SELECT DISTINCT r.user_key FROM ("
                + "SELECT reporter AS user_key FROM \(issues) "
                + "UNION ALL SELECT creator FROM \(issues) "
                + "UNION ALL SELECT assignee FROM \(issues) "
                + "UNION ALL SELECT v.stringvalue FROM \(t("customfieldvalue")) AS v JOIN \(t("customfield")) AS f "
                + "ON f.id = v.customfield WHERE f.customfieldtypekey = '\(JiraSchema.requestParticipantsFieldType)' "
                + "UNION ALL SELECT \"USER_KEY\" FROM \(t("AO_54307E_ORGANIZATION_MEMBER"))"
                + ") AS r WHERE r.user_key IS NOT NULL AND r.user_key <> '' "
                + "AND NOT EXISTS (SELECT 1 FROM \(t("app_user")) AS a WHERE a.user_key = r.user_key) "
                + "AND NOT EXISTS (SELECT 1 FROM \(t("cwd_user")) AS u WHERE u.lower_user_name = r.user_key "
                + "AND NOT EXISTS (SELECT 1 FROM \(t("app_user")) AS n WHERE n.lower_user_name = u.lower_user_name)) "
                + "ORDER BY r.user_key")
    }
}

/// A membership row with the names a group migration needs.
public struct SourceMembership: Sendable, Hashable {
    /// The row itself.
    public let row: MembershipRow
    /// `parent_name`: the group.
    public let groupName: String
    /// `child_name`: the user or nested group.
    public let childName: String
    /// For a user membership, the user key its `lower_child_name` resolves to (the name itself when
    /// no `app_user` row has it); `nil` for a nested group.
    public let userKey: String?
}

/// Gathers the consecutive rows of one user name (one row per directory user and membership) into
/// the domain's ``UserSourceRows``.
struct UserRowGrouper {
    private var name: String?
    private var appUser: AppUserRow?
    private var users: [UserRow] = []
    private var memberships: [MembershipRow] = []

    /// Adds a row; returns the previous user's rows when this row starts another user.
    mutating func add(_ record: SQLRecord) -> UserSourceRows? {
        let userId = record.integer(0) ?? -1
        let userName = record.text(2)
        // A NULL lower_user_name (not possible in Jira, possible in a damaged copy) falls back to the
        // user name, then to the row id, so the row is still classified and reported.
        let lowerName = record.text(3) ?? userName?.lowercased() ?? "cwd_user:\(userId)"
        var completed: UserSourceRows?
        if name != lowerName {
            completed = flush()
            name = lowerName
        }
        if appUser == nil, let appId = record.integer(7), let key = record.text(8) {
            appUser = AppUserRow(id: appId, userKey: key, lowerUserName: lowerName)
        }
        if !users.contains(where: { $0.id == userId }) {
            users.append(
                UserRow(
                    id: userId, directoryId: record.integer(1) ?? -1, userName: userName ?? lowerName,
                    lowerUserName: lowerName, isActive: (record.integer(4) ?? 1) != 0,
                    displayName: record.text(5) ?? "", emailAddress: record.text(6)))
        }
        if let membershipId = record.integer(9), !memberships.contains(where: { $0.id == membershipId }) {
            memberships.append(
                MembershipRow(
                    id: membershipId, parentId: record.integer(10) ?? -1, childId: userId, type: .groupUser,
                    directoryId: record.integer(11) ?? -1))
        }
        return completed
    }

    /// The rows gathered for the current user, if any, and a fresh start.
    mutating func flush() -> UserSourceRows? {
        guard let name else { return nil }
        let rows = UserSourceRows(
            userKey: appUser?.userKey ?? name, appUser: appUser, users: users, memberships: memberships)
        self.name = nil
        appUser = nil
        users = []
        memberships = []
        return rows
    }
}

/// Every identity of a Jira source, classified as it is read (see
/// ``JiraSource/classifiedIdentities(classifier:)``), or those with a directory user only (see
/// ``JiraSource/classifiedDirectoryUsers(classifier:)``); memory stays flat however many users there are.
public struct ClassifiedIdentityStream: AsyncSequence, Sendable {
    /// A classified identity with its anomalies.
    public typealias Element = ClassifiedIdentity

    let source: JiraSource
    let classifier: IdentityClassifier
    /// Ends after the directory users (see ``JiraSource/classifiedDirectoryUsers(classifier:)``).
    let directoryUsersOnly: Bool

    /// Starts reading.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(source: source, classifier: classifier, directoryUsersOnly: directoryUsersOnly)
    }

    /// Reads directory users, then (unless `directoryUsersOnly`) `app_user` rows without one, then
    /// unknown referenced keys.
    public struct AsyncIterator: AsyncIteratorProtocol {
        enum Phase { case directoryUsers, appUsersOnly, unknownReferences, done }

        let source: JiraSource
        let classifier: IdentityClassifier
        let directoryUsersOnly: Bool
        var phase = Phase.directoryUsers
        var rows: SQLRowStream.AsyncIterator?
        var grouper = UserRowGrouper()

        init(source: JiraSource, classifier: IdentityClassifier, directoryUsersOnly: Bool) {
            self.source = source
            self.classifier = classifier
            self.directoryUsersOnly = directoryUsersOnly
        }

        /// The next identity; `nil` once every phase has been read.
        public mutating func next() async throws -> ClassifiedIdentity? {
            // Bounded: each pass reads one row of a finite statement or moves to the next of four phases.
            while true {
                switch phase {
                case .done:
                    return nil
                case .directoryUsers:
                    if rows == nil { rows = source.database.rows(source.allUserRows).makeAsyncIterator() }
                    if let record = try await rows?.next() {
                        if let completed = grouper.add(record) { return classifier.classify(completed) }
                    } else {
                        rows = nil
                        phase = directoryUsersOnly ? .done : .appUsersOnly
                        if let last = grouper.flush() { return classifier.classify(last) }
                    }
                case .appUsersOnly:
                    if rows == nil {
                        rows = source.database.rows(source.appUsersWithoutDirectoryUser).makeAsyncIterator()
                    }
                    if let record = try await rows?.next() {
                        guard let key = record.text(1) else { continue }
                        let appUser = AppUserRow(
                            id: record.integer(0) ?? -1, userKey: key, lowerUserName: record.text(2) ?? "")
                        return classifier.classify(
                            UserSourceRows(userKey: key, appUser: appUser, users: [], memberships: []))
                    }
                    rows = nil
                    phase = .unknownReferences
                case .unknownReferences:
                    if rows == nil { rows = source.database.rows(source.unknownReferencedKeys).makeAsyncIterator() }
                    if let record = try await rows?.next() {
                        guard let key = record.text(0) else { continue }
                        return classifier.classify(
                            UserSourceRows(userKey: key, appUser: nil, users: [], memberships: []))
                    }
                    rows = nil
                    phase = .done
                }
            }
        }
    }
}
