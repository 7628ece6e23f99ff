import JSMSource

/// A table of the Jira subset, as the fixtures create it: the same DDL on both backends.
public struct JiraTable: Sendable, Hashable {
    /// The column types the fixtures use; Jira's own types differ (e.g. `numeric(18,0)` ids on
    /// PostgreSQL), which the adapter's casts absorb.
    public enum ColumnType: String, Sendable, Hashable {
        /// `BIGINT`
        case bigint = "BIGINT"
        /// `INTEGER`
        case integer = "INTEGER"
        /// `VARCHAR(255)`
        case text = "VARCHAR(255)"
    }

    /// The table name, as Jira spells it.
    public let name: String
    /// The columns, in insert order; the first is the primary key.
    public let columns: [(name: String, type: ColumnType)]
    /// Indexes created after loading, each a list of columns.
    public let indexes: [[String]]

    /// Two tables are the same when their names are.
    public static func == (lhs: JiraTable, rhs: JiraTable) -> Bool { lhs.name == rhs.name }
    /// Hashes the name.
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }

    /// `CREATE TABLE` for a qualified name.
    func createStatement(qualifiedName: String) -> String {
        let definitions = columns.enumerated().map { index, column in
            "\(quote(column.name)) \(column.type.rawValue)\(index == 0 ? " PRIMARY KEY" : "")"
        }
        return "CREATE TABLE \(qualifiedName) (\(definitions.joined(separator: ", ")))"
    }

    /// `CREATE INDEX` statements; index names are unique per table.
    func indexStatements(qualifiedName: String, indexPrefix: String) -> [String] {
        indexes.enumerated().map { number, columns in
            "CREATE INDEX \(quote("\(indexPrefix)\(name.lowercased())_\(number)")) ON \(qualifiedName) "
                + "(\(columns.map(quote).joined(separator: ", ")))"
        }
    }
}

func quote(_ identifier: String) -> String { "\"" + identifier + "\"" }

/// The tables of design section 3, in dependency order.
public enum JiraTables {
    /// `cwd_directory`
    public static let directory = JiraTable(
        name: "cwd_directory",
        columns: [("id", .bigint), ("directory_name", .text), ("active", .integer), ("directory_position", .bigint)],
        indexes: [])
    /// `cwd_user`
    public static let user = JiraTable(
        name: "cwd_user",
        columns: [
            ("id", .bigint), ("directory_id", .bigint), ("user_name", .text), ("lower_user_name", .text),
            ("active", .integer), ("display_name", .text), ("email_address", .text), ("lower_email_address", .text),
        ],
        indexes: [["lower_user_name", "directory_id"]])
    /// `app_user`
    public static let appUser = JiraTable(
        name: "app_user", columns: [("id", .bigint), ("user_key", .text), ("lower_user_name", .text)],
        indexes: [["user_key"], ["lower_user_name"]])
    /// `cwd_group`
    public static let group = JiraTable(
        name: "cwd_group",
        columns: [
            ("id", .bigint), ("group_name", .text), ("lower_group_name", .text), ("active", .integer),
            ("directory_id", .bigint),
        ],
        indexes: [["lower_group_name", "directory_id"]])
    /// `cwd_membership`
    public static let membership = JiraTable(
        name: "cwd_membership",
        columns: [
            ("id", .bigint), ("parent_id", .bigint), ("child_id", .bigint), ("membership_type", .text),
            ("parent_name", .text), ("lower_parent_name", .text), ("child_name", .text), ("lower_child_name", .text),
            ("directory_id", .bigint),
        ],
        indexes: [["child_id"], ["parent_id"]])
    /// `licenserolesgroup`
    public static let licenseRoleGroup = JiraTable(
        name: "licenserolesgroup", columns: [("id", .bigint), ("license_role_name", .text), ("group_id", .text)],
        indexes: [])
    /// `globalpermissionentry`
    public static let globalPermission = JiraTable(
        name: "globalpermissionentry", columns: [("id", .bigint), ("permission", .text), ("group_id", .text)],
        indexes: [])
    /// `project`
    public static let project = JiraTable(
        name: "project", columns: [("id", .bigint), ("pname", .text), ("pkey", .text), ("projecttype", .text)],
        indexes: [])
    /// `jiraissue`
    public static let issue = JiraTable(
        name: "jiraissue",
        columns: [("id", .bigint), ("project", .bigint), ("reporter", .text), ("creator", .text), ("assignee", .text)],
        indexes: [["project"], ["reporter"]])
    /// `customfield`
    public static let customField = JiraTable(
        name: "customfield", columns: [("id", .bigint), ("customfieldtypekey", .text), ("cfname", .text)], indexes: [])
    /// `customfieldvalue`
    public static let customFieldValue = JiraTable(
        name: "customfieldvalue",
        columns: [("id", .bigint), ("issue", .bigint), ("customfield", .bigint), ("stringvalue", .text)],
        indexes: [["issue", "customfield"]])
    /// `AO_54307E_ORGANIZATION`
    public static let organization = JiraTable(
        name: "AO_54307E_ORGANIZATION", columns: [("ID", .integer), ("NAME", .text)], indexes: [])
    /// `AO_54307E_ORGANIZATION_MEMBER`
    public static let organizationMember = JiraTable(
        name: "AO_54307E_ORGANIZATION_MEMBER",
        columns: [("ID", .integer), ("ORGANIZATION_ID", .integer), ("USER_KEY", .text)],
        indexes: [["ORGANIZATION_ID"]])
    /// `AO_54307E_SERVICEDESK`
    public static let serviceDesk = JiraTable(
        name: "AO_54307E_SERVICEDESK", columns: [("ID", .integer), ("PROJECT_ID", .bigint)], indexes: [])

    /// Every table, in the order fixtures create and digest them.
    public static let all: [JiraTable] = [
        directory, user, appUser, group, membership, licenseRoleGroup, globalPermission, project, issue,
        customField, customFieldValue, organization, organizationMember, serviceDesk,
    ]
}
