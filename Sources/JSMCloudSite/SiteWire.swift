import Foundation
import Hummingbird
import JSMDomain

/// Request and answer bodies of the endpoints the site serves, in Atlassian's shapes.

/// `POST /rest/servicedeskapi/customer`: Atlassian's `CustomerCreateDTO` (`fullName` is its
/// deprecated spelling of `displayName`). Every field is optional here so that a missing field gets
/// the site's own message, while a field of the wrong JSON type is still refused by the decoder.
struct CustomerCreateRequest: Decodable {
    let email: String?
    let displayName: String?
    let fullName: String?
}

/// `POST /rest/api/3/user`: Atlassian's `NewUserDetails`.
struct UserCreateRequest: Decodable {
    let emailAddress: String?
    let displayName: String?
    let products: [String]?
}

/// `POST /rest/api/3/group`.
struct GroupCreateRequest: Decodable {
    let name: String?
}

/// `POST /rest/api/3/group/user`.
struct GroupMemberRequest: Decodable {
    let accountId: String?
}

/// The service desk's `UserDTO`, answered by customer creation.
struct CustomerBody: Encodable {
    struct Links: Encodable {
        let jiraRest: String
        let avatarUrls: [String: String]
        let `self`: String
    }

    let accountId: String
    let name: String
    let key: String
    let emailAddress: String
    let displayName: String
    let active: Bool
    let timeZone: String
    let _links: Links

    init(_ account: SiteAccount, baseURL: String) {
        accountId = account.accountId
        name = account.accountId
        key = account.accountId
        emailAddress = account.email
        displayName = account.displayName
        active = true
        timeZone = "Etc/UTC"
        let userURL = baseURL + "/rest/api/2/user?accountId=" + account.accountId
        _links = Links(jiraRest: userURL, avatarUrls: [:], self: userURL)
    }
}

/// The platform's `User`, answered by user search, lookup and creation.
struct UserBody: Encodable {
    let `self`: String
    let accountId: String
    let accountType: String
    let emailAddress: String
    let avatarUrls: [String: String]
    let displayName: String
    let active: Bool
    let timeZone: String
    let locale: String

    init(_ account: SiteAccount, baseURL: String) {
        self.`self` = baseURL + "/rest/api/3/user?accountId=" + account.accountId
        accountId = account.accountId
        accountType = account.type.rawValue
        emailAddress = account.email
        avatarUrls = [:]
        displayName = account.displayName
        active = true
        timeZone = "Etc/UTC"
        locale = "en_US"
    }
}

/// The platform's `Group`, answered by group creation and membership changes.
struct GroupBody: Encodable {
    struct Users: Encodable {
        let size: Int
        let items: [UserBody]
        let maxResults: Int
        let startIndex: Int
        let endIndex: Int

        enum CodingKeys: String, CodingKey {
            case size, items
            case maxResults = "max-results"
            case startIndex = "start-index"
            case endIndex = "end-index"
        }
    }

    let name: String
    let groupId: String
    let `self`: String
    let users: Users
    let expand: String

    init(_ group: SiteGroup, baseURL: String) {
        name = group.name
        groupId = group.groupId
        self.`self` = baseURL + "/rest/api/3/group?groupId=" + group.groupId
        users = Users(size: 0, items: [], maxResults: 50, startIndex: 0, endIndex: 0)
        expand = "users"
    }
}

/// The platform's `PageBeanGroupDetails`, answered by `GET /rest/api/3/group/bulk`.
struct GroupPageBody: Encodable {
    struct Details: Encodable {
        let name: String
        let groupId: String
    }

    let maxResults: Int
    let startAt: Int
    let total: Int
    let isLast: Bool
    let values: [Details]
}

/// The platform's error shape: `{"errorMessages":[...],"errors":{...}}`.
struct PlatformErrorBody: Encodable {
    let errorMessages: [String]
    let errors: [String: String]
}

/// The service desk's error shape: `{"errorMessage":"...","i18nErrorMessage":{...}}`.
struct ServiceDeskErrorBody: Encodable {
    struct I18n: Encodable {
        let i18nKey: String
        let parameters: [String]
    }

    let errorMessage: String
    let i18nErrorMessage: I18n
}

/// `GET /_local/v1/counts`: this site's own verification figures (not an Atlassian endpoint).
struct LocalCountsBody: Encodable {
    struct Accounts: Encodable {
        let atlassian: Int
        let customer: Int
        let total: Int
    }

    let site: String
    let accounts: Accounts
    let groups: Int
    let groupMemberships: Int
}

/// `GET /_local/v1/accounts`: one page of this site's accounts in creation order (not Atlassian's).
struct LocalAccountPageBody: Encodable {
    struct Account: Encodable {
        let accountId: String
        let accountType: String
        let emailAddress: String
        let displayName: String
    }

    let accounts: [Account]
    let nextCursor: String?
}

/// Builds the answers, with Atlassian's content type.
enum SiteResponse {
    static func json(_ value: some Encodable, status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var headers = headers
        headers[.contentType] = "application/json;charset=UTF-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A platform (`/rest/api/3`) error.
    static func platformError(
        _ status: HTTPResponse.Status, _ message: String, errors: [String: String] = [:], headers: HTTPFields = [:]
    ) -> Response {
        json(PlatformErrorBody(errorMessages: [message], errors: errors), status: status, headers: headers)
    }

    /// A service desk (`/rest/servicedeskapi`) error; the i18n key is this site's own.
    static func serviceDeskError(_ status: HTTPResponse.Status, _ message: String, key: String) -> Response {
        json(
            ServiceDeskErrorBody(
                errorMessage: message,
                i18nErrorMessage: .init(i18nKey: "jsm-migrate.cloud-site." + key, parameters: [])),
            status: status)
    }
}

/// Why a request body was refused, worded for the caller.
struct BodyProblem: Error {
    let message: String

    init(_ message: String) { self.message = message }

    /// Describes a decoding failure by field, never echoing the value.
    init(decoding error: DecodingError) {
        func field(_ path: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = (path + (last.map { [$0] } ?? [])).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "the body" : "'" + keys.joined(separator: ".") + "'"
        }
        switch error {
        case .typeMismatch(let type, let context):
            message = "The field \(field(context.codingPath)) must be \(Self.jsonName(type))."
        case .valueNotFound(let type, let context):
            message = "The field \(field(context.codingPath)) must be \(Self.jsonName(type)), not null."
        case .keyNotFound(let key, let context):
            message = "The field \(field(context.codingPath, key)) is required."
        case .dataCorrupted:
            message = "The request body is not valid JSON."
        @unknown default:
            message = "The request body cannot be read."
        }
    }

    private static func jsonName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Double.Type: return "a number"
        case is [String].Type, is [Any].Type: return "an array"
        default: return "an object"
        }
    }

    /// Reads and decodes a JSON body of at most `limit` bytes.
    static func decode<Value: Decodable>(_ type: Value.Type, from request: inout Request, limit: Int) async throws
        -> Value
    {
        let buffer = try await request.collectBody(upTo: limit)
        guard buffer.readableBytes > 0 else {
            throw BodyProblem("The request body is empty; a JSON object is expected.")
        }
        do {
            return try JSONDecoder().decode(type, from: buffer)
        } catch let error as DecodingError {
            throw BodyProblem(decoding: error)
        }
    }
}

/// The input checks Atlassian applies to names and emails.
enum SiteValidation {
    /// Atlassian's limit on display and group names.
    static let maxNameLength = 255

    /// A normalised, valid email, or the reason it is refused.
    static func email(_ raw: String?, field: String) -> Result<NormalizedEmail, BodyProblem> {
        guard let raw, let email = NormalizedEmail(raw) else {
            return .failure(BodyProblem("The field '\(field)' is required: an email address."))
        }
        switch email.validity {
        case .valid: return .success(email)
        case .missing: return .failure(BodyProblem("The field '\(field)' is required: an email address."))
        case .malformed: return .failure(BodyProblem("The field '\(field)' is not a valid email address."))
        case .localPartTooLong:
            return .failure(BodyProblem("The field '\(field)' has more than 64 characters before the '@'."))
        }
    }

    /// A display name: trimmed, defaulting to the email, at most 255 characters.
    static func displayName(_ raw: String?, email: NormalizedEmail, field: String) -> Result<String, BodyProblem> {
        guard let raw else { return .success(email.value) }
        // Checked on bytes first so a huge value is refused without walking its characters.
        guard raw.utf8.count <= maxNameLength * 4 else {
            return .failure(BodyProblem("The field '\(field)' must be at most \(maxNameLength) characters."))
        }
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count <= maxNameLength else {
            return .failure(BodyProblem("The field '\(field)' must be at most \(maxNameLength) characters."))
        }
        return .success(trimmed.isEmpty ? email.value : trimmed)
    }
}
