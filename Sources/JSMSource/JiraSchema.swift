/// The subset of Jira Server/DC's schema the adapter reads (design section 3), checked before any read.
public enum JiraSchema {
    /// Tables and the columns read from each, in the order they are checked and reported.
    public static let requiredColumns: [(table: String, columns: [String])] = [
        ("cwd_directory", ["id", "directory_name", "active", "directory_position"]),
        (
            "cwd_user",
            [
                "id", "directory_id", "user_name", "lower_user_name", "active", "display_name", "email_address",
                "lower_email_address",
            ]
        ),
        ("app_user", ["id", "user_key", "lower_user_name"]),
        ("cwd_group", ["id", "group_name", "lower_group_name", "active", "directory_id"]),
        (
            "cwd_membership",
            [
                "id", "parent_id", "child_id", "membership_type", "parent_name", "lower_parent_name", "child_name",
                "lower_child_name", "directory_id",
            ]
        ),
        ("licenserolesgroup", ["id", "license_role_name", "group_id"]),
        ("globalpermissionentry", ["id", "permission", "group_id"]),
        ("project", ["id", "pname", "pkey", "projecttype"]),
        ("jiraissue", ["id", "project", "reporter", "creator", "assignee"]),
        ("customfield", ["id", "customfieldtypekey", "cfname"]),
        ("customfieldvalue", ["id", "issue", "customfield", "stringvalue"]),
        ("AO_54307E_ORGANIZATION", ["ID", "NAME"]),
        ("AO_54307E_ORGANIZATION_MEMBER", ["ID", "ORGANIZATION_ID", "USER_KEY"]),
        ("AO_54307E_SERVICEDESK", ["ID", "PROJECT_ID"]),
    ]

    /// The custom field type whose values are a request's participants (one user key per row).
    public static let requestParticipantsFieldType = "com.atlassian.servicedesk:sd-request-participants"
    /// The custom field type whose values are the organizations a request is shared with (one ID per row).
    public static let customerOrganizationsFieldType = "com.atlassian.servicedesk:sd-customer-organizations"

    /// What the source lacks, given the columns it has per table.
    ///
    /// - Parameters:
    ///   - present: `(table, column)` pairs the database catalog lists.
    ///   - caseInsensitive: SQLite resolves identifiers case-insensitively, PostgreSQL (quoted) exactly.
    public static func missing(present: some Sequence<(String, String)>, caseInsensitive: Bool) -> [MissingSchemaObject]
    {
        func fold(_ name: String) -> String { caseInsensitive ? name.lowercased() : name }
        var columnsByTable: [String: Set<String>] = [:]
        for (table, column) in present { columnsByTable[fold(table), default: []].insert(fold(column)) }
        var missing: [MissingSchemaObject] = []
        for (table, columns) in requiredColumns {
            guard let present = columnsByTable[fold(table)] else {
                missing.append(MissingSchemaObject(table: table, column: nil))
                continue
            }
            for column in columns where !present.contains(fold(column)) {
                missing.append(MissingSchemaObject(table: table, column: column))
            }
        }
        return missing
    }
}
