// Plain in-memory rows of the Jira Server/DC tables the classification reads (design section 3).
// The database adapters fill these; the rules never see SQL.

/// A `cwd_directory` row: user directories, ordered by position, some switched off.
public struct DirectoryRow: Sendable, Hashable {
    /// `id`
    public let id: Int64
    /// `directory_name`, for messages.
    public let name: String
    /// `active = 1`
    public let isActive: Bool
    /// `directory_position`: a user name present in several directories resolves to the first
    /// active one by this position.
    public let position: Int

    /// Creates a directory row.
    public init(id: Int64, name: String, isActive: Bool, position: Int) {
        self.id = id
        self.name = name
        self.isActive = isActive
        self.position = position
    }
}

/// A `cwd_user` row: one user name in one directory.
public struct UserRow: Sendable, Hashable {
    /// `id`, which `cwd_membership.child_id` refers to.
    public let id: Int64
    /// `directory_id`
    public let directoryId: Int64
    /// `user_name`
    public let userName: String
    /// `lower_user_name`, which `app_user.lower_user_name` refers to.
    public let lowerUserName: String
    /// `active = 1`; a disabled user keeps its kind and is flagged.
    public let isActive: Bool
    /// `display_name`
    public let displayName: String
    /// `email_address`; `nil` for NULL.
    public let emailAddress: String?

    /// Creates a user row.
    public init(
        id: Int64, directoryId: Int64, userName: String, lowerUserName: String? = nil, isActive: Bool,
        displayName: String, emailAddress: String?
    ) {
        self.id = id
        self.directoryId = directoryId
        self.userName = userName
        self.lowerUserName = lowerUserName ?? userName.lowercased()
        self.isActive = isActive
        self.displayName = displayName
        self.emailAddress = emailAddress
    }
}

/// An `app_user` row: the stable user key other tables use, tied to a lower-cased user name.
public struct AppUserRow: Sendable, Hashable {
    /// `id`
    public let id: Int64
    /// `user_key`
    public let userKey: String
    /// `lower_user_name`
    public let lowerUserName: String

    /// Creates an app user row.
    public init(id: Int64, userKey: String, lowerUserName: String) {
        self.id = id
        self.userKey = userKey
        self.lowerUserName = lowerUserName
    }
}

/// A `cwd_group` row.
public struct GroupRow: Sendable, Hashable {
    /// `id`, which `cwd_membership.parent_id` (and `child_id` for nested groups) refers to.
    public let id: Int64
    /// `group_name`, for messages.
    public let name: String
    /// `lower_group_name`, which licensing tables match (they hold group names, case-insensitively).
    public let lowerName: String
    /// `active = 1`; an inactive group grants nothing, to its members or to groups nested in it.
    public let isActive: Bool
    /// `directory_id`
    public let directoryId: Int64

    /// Creates a group row.
    public init(id: Int64, name: String, lowerName: String? = nil, isActive: Bool = true, directoryId: Int64) {
        self.id = id
        self.name = name
        self.lowerName = lowerName ?? name.lowercased()
        self.isActive = isActive
        self.directoryId = directoryId
    }
}

/// `cwd_membership.membership_type`.
public enum MembershipType: String, Sendable, Hashable, CaseIterable {
    /// A user (`child_id` = `cwd_user.id`) in a group (`parent_id`).
    case groupUser = "GROUP_USER"
    /// A nested group (`child_id` = `cwd_group.id`) in a group (`parent_id`).
    case groupGroup = "GROUP_GROUP"
}

/// A `cwd_membership` row.
public struct MembershipRow: Sendable, Hashable {
    /// `id`, quoted in anomaly reports.
    public let id: Int64
    /// `parent_id`: the group.
    public let parentId: Int64
    /// `child_id`: the user or the nested group.
    public let childId: Int64
    /// `membership_type`
    public let type: MembershipType
    /// `directory_id`
    public let directoryId: Int64

    /// Creates a membership row.
    public init(id: Int64, parentId: Int64, childId: Int64, type: MembershipType, directoryId: Int64) {
        self.id = id
        self.parentId = parentId
        self.childId = childId
        self.type = type
        self.directoryId = directoryId
    }
}

/// A `licenserolesgroup` row: a group with application access (Jira Software, Service Management...).
public struct LicenseRoleGroupRow: Sendable, Hashable {
    /// `license_role_name`
    public let licenseRoleName: String
    /// `group_id`, which holds the group's name.
    public let groupName: String

    /// Creates a license role group row.
    public init(licenseRoleName: String, groupName: String) {
        self.licenseRoleName = licenseRoleName
        self.groupName = groupName
    }
}

/// A `globalpermissionentry` row; `ADMINISTER` and `SYSTEM_ADMIN` make a group's members licensed.
public struct GlobalPermissionRow: Sendable, Hashable {
    /// `permission`
    public let permission: String
    /// `group_id`, which holds the group's name.
    public let groupName: String

    /// Creates a global permission row.
    public init(permission: String, groupName: String) {
        self.permission = permission
        self.groupName = groupName
    }
}

/// Every row the classification needs, for sources small enough to hold in memory (the embedded
/// SQLite demo, tests); large sources use ``IdentityClassifier/classify(_:)`` per user instead.
public struct SourceSnapshot: Sendable {
    /// `cwd_directory`
    public var directories: [DirectoryRow]
    /// `cwd_user`
    public var users: [UserRow]
    /// `app_user`
    public var appUsers: [AppUserRow]
    /// `cwd_group`
    public var groups: [GroupRow]
    /// `cwd_membership`, both types.
    public var memberships: [MembershipRow]
    /// `licenserolesgroup`
    public var licenseRoleGroups: [LicenseRoleGroupRow]
    /// `globalpermissionentry`
    public var globalPermissions: [GlobalPermissionRow]

    /// Creates a snapshot; every table defaults to empty.
    public init(
        directories: [DirectoryRow] = [], users: [UserRow] = [], appUsers: [AppUserRow] = [],
        groups: [GroupRow] = [], memberships: [MembershipRow] = [],
        licenseRoleGroups: [LicenseRoleGroupRow] = [], globalPermissions: [GlobalPermissionRow] = []
    ) {
        self.directories = directories
        self.users = users
        self.appUsers = appUsers
        self.groups = groups
        self.memberships = memberships
        self.licenseRoleGroups = licenseRoleGroups
        self.globalPermissions = globalPermissions
    }
}
