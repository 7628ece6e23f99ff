import JSMDomain

/// Builders that keep the scenarios short: only what a test is about is spelled out.
enum Make {
    static func customer(
        _ key: String, email: String? = nil, position: Int? = 0, active: Bool = true
    ) -> ServerIdentity {
        identity(key, kind: .customer, email: email, position: position, active: active)
    }

    static func licensed(
        _ key: String, email: String? = nil, position: Int? = 0, active: Bool = true
    ) -> ServerIdentity {
        identity(key, kind: .licensedUser, email: email, position: position, active: active)
    }

    static func inactiveDirectoryUser(_ key: String, email: String? = nil) -> ServerIdentity {
        identity(key, kind: .inactiveDirectory, email: email, position: 9, active: true)
    }

    static func identity(
        _ key: String, kind: IdentityKind, email: String?, position: Int?, active: Bool
    ) -> ServerIdentity {
        ServerIdentity(
            userKey: key, userName: key, displayName: key.capitalized, rawEmail: email ?? "\(key)@example.com",
            directoryId: position.map { Int64($0) + 1 }, directoryPosition: position, isActive: active, kind: kind)
    }

    static let atlassianAccount = ExistingCloudAccount(accountId: "atl-1", type: .atlassian)
    static let customerAccount = ExistingCloudAccount(accountId: "cus-1", type: .customer)
}

extension String {
    fileprivate var capitalized: String { prefix(1).uppercased() + dropFirst() }
}
