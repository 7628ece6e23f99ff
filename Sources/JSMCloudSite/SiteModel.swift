import Foundation
import JSMDomain
import Synchronization

/// An account as the local site stores it.
public struct SiteAccount: Sendable, Hashable {
    /// The position in creation order, which the verification listing pages by.
    public let sequence: Int64
    /// The id the site handed out.
    public let accountId: String
    /// Atlassian or customer account.
    public let type: CloudAccountType
    /// The normalised email: the site keeps one account per (email, type).
    public let email: String
    /// The name shown for the account.
    public let displayName: String
    /// The Jira products the account has access to (sorted); empty for a customer, and for an
    /// Atlassian account created with `products: []`, as the migration creates them.
    public let products: [String]

    /// Describes a stored account.
    public init(
        sequence: Int64, accountId: String, type: CloudAccountType, email: String, displayName: String,
        products: [String] = []
    ) {
        self.sequence = sequence
        self.accountId = accountId
        self.type = type
        self.email = email
        self.displayName = displayName
        self.products = products
    }

    /// Whether the account has access to Jira: what Atlassian's "Create user" looks at when the
    /// email already has an Atlassian account (201 with it when it has, 400 when it has not).
    public var hasProductAccess: Bool { !products.isEmpty }
}

/// An account to create, with its id chosen up front so a batch insert can tell which rows it made.
public struct NewSiteAccount: Sendable, Hashable {
    /// The id the account gets if it is new.
    public let accountId: String
    /// Atlassian or customer account.
    public let type: CloudAccountType
    /// The normalised email.
    public let email: NormalizedEmail
    /// The name shown for the account.
    public let displayName: String
    /// The Jira products it gets access to (sorted, no duplicates); always empty for a customer.
    public let products: [String]

    /// Prepares an account with a freshly generated id in Atlassian's style for its type.
    public init(type: CloudAccountType, email: NormalizedEmail, displayName: String, products: [String] = []) {
        self.accountId = AccountIdentifier.make(for: type)
        self.type = type
        self.email = email
        self.displayName = displayName
        self.products = type == .customer ? [] : JiraProduct.canonical(products)
    }
}

/// The Jira products an Atlassian account can be given access to, as `POST /rest/api/3/user` names them.
public enum JiraProduct {
    /// The product keys Atlassian accepts in `products`.
    public static let all: [String] = ["jira-core", "jira-product-discovery", "jira-servicedesk", "jira-software"]

    /// Sorted and without duplicates, so equal sets compare and store equal.
    public static func canonical(_ products: [String]) -> [String] {
        Array(Set(products)).sorted()
    }

    /// The stored form: keys joined by commas (empty for no access).
    static func column(_ products: [String]) -> String {
        products.joined(separator: ",")
    }

    /// Reads the stored form back.
    static func fromColumn(_ value: String?) -> [String] {
        guard let value, !value.isEmpty else { return [] }
        return value.split(separator: ",").map(String.init)
    }
}

/// How a creation ended at the store: the database's unique constraint decides.
public enum AccountCreation: Sendable, Hashable {
    /// A new row.
    case created(SiteAccount)
    /// The email already had this account: of the same type, or, for a customer, an Atlassian
    /// account (which a customer account is never created beside).
    case existing(SiteAccount)
}

/// A group as the site stores it.
public struct SiteGroup: Sendable, Hashable {
    /// The id the site handed out (a UUID, as Atlassian's group ids are).
    public let groupId: String
    /// The name, as first created; names compare case-insensitively.
    public let name: String

    /// Describes a stored group.
    public init(groupId: String, name: String) {
        self.groupId = groupId
        self.name = name
    }
}

/// How a group creation ended.
public enum GroupCreation: Sendable, Hashable {
    /// A new group.
    case created(SiteGroup)
    /// A group with that name (compared case-insensitively) already existed.
    case existing(SiteGroup)
}

/// How a membership request ended at the store.
public enum MembershipResult: Sendable, Hashable {
    /// The account became a member.
    case added
    /// The account already was a member.
    case alreadyMember
}

/// The site's own verification figures: accounts per type, groups and memberships.
public struct SiteCounts: Sendable, Hashable, Codable {
    /// Atlassian accounts.
    public var atlassianAccounts: Int
    /// Customer accounts.
    public var customerAccounts: Int
    /// Groups.
    public var groups: Int
    /// Group memberships.
    public var groupMemberships: Int

    /// Collects the figures.
    public init(atlassianAccounts: Int, customerAccounts: Int, groups: Int, groupMemberships: Int) {
        self.atlassianAccounts = atlassianAccounts
        self.customerAccounts = customerAccounts
        self.groups = groups
        self.groupMemberships = groupMemberships
    }
}

/// Account ids in the shapes Atlassian uses, so ids from the local site look like real ones in
/// reports and mappings.
///
/// They are made on every creation, so they come from a clock and a counter rather than from
/// `UUID()`, which reads the system's random source (a file open on Linux) each time. The first
/// half is time-ordered (milliseconds, then the counter), as in UUIDv7: new ids land at the end of
/// the store's unique index instead of on a random page, which keeps the pages each group commit
/// writes few. The second half is the counter mixed with a random per-process salt: within a
/// process ids never repeat (the mix is a bijection), across restarts of a site on one store the
/// fresh salt makes a repeat as unlikely as for random UUIDs, and the unique constraint on the id
/// would refuse one anyway.
public enum AccountIdentifier {
    private static let counter = Atomic<UInt64>(0)
    private static let salt = UInt64.random(in: .min ... .max)

    /// `712020:<uuid>` for an Atlassian account, `qm:<uuid>:<uuid>` for a customer account.
    public static func make(for type: CloudAccountType) -> String {
        switch type {
        case .atlassian: return "712020:" + uniqueHex()
        case .customer: return "qm:" + uniqueHex() + ":" + uniqueHex()
        }
    }

    /// 128 bits in the 8-4-4-4-12 lower-case hex layout of a UUID.
    static func uniqueHex() -> String {
        let sequence = counter.wrappingAdd(1, ordering: .relaxed).newValue
        let milliseconds = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        let high = milliseconds << 16 | (sequence & 0xFFFF)
        let low = mixed(sequence ^ salt)
        return String(unsafeUninitializedCapacity: 36) { text in
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { digits in
                var position = 0
                for digit in 0..<32 {
                    if digit == 8 || digit == 12 || digit == 16 || digit == 20 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    let value = digit < 16 ? high : low
                    text[position] = digits[Int((value >> UInt64(60 - (digit % 16) * 4)) & 0xF)]
                    position += 1
                }
            }
            return 36
        }
    }

    /// SplitMix64's finaliser: a bijection on 64 bits that spreads every input bit over the output.
    private static func mixed(_ value: UInt64) -> UInt64 {
        var mixed = value
        mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
        return mixed ^ (mixed >> 31)
    }
}

extension AccountIdentifier {
    /// A group id: a UUID, as Atlassian's group ids are.
    public static func groupId() -> String { UUID().uuidString.lowercased() }
}
