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
struct CustomerBody: JSONBody {
    let account: SiteAccount
    let baseURL: String

    init(_ account: SiteAccount, baseURL: String) {
        self.account = account
        self.baseURL = baseURL
    }

    func write(to json: inout JSONWriter) {
        let userURL = baseURL + "/rest/api/2/user?accountId=" + account.accountId
        json.object {
            $0.member("accountId", account.accountId)
            $0.member("name", account.accountId)
            $0.member("key", account.accountId)
            $0.member("emailAddress", account.email)
            $0.member("displayName", account.displayName)
            $0.member("active", true)
            $0.member("timeZone", "Etc/UTC")
            $0.member("_links") {
                $0.member("jiraRest", userURL)
                $0.member("avatarUrls", stringMap: [:])
                $0.member("self", userURL)
            }
        }
    }
}

/// The platform's `User`, answered by user search, lookup and creation.
struct UserBody: JSONBody {
    let account: SiteAccount
    let baseURL: String
    /// The platform's shorter `UserDetails` (a group member in `GET /rest/api/3/group/member`):
    /// without avatar URLs and locale.
    let details: Bool

    init(_ account: SiteAccount, baseURL: String, details: Bool = false) {
        self.account = account
        self.baseURL = baseURL
        self.details = details
    }

    func write(to json: inout JSONWriter) {
        json.object {
            $0.member("self", baseURL + "/rest/api/3/user?accountId=" + account.accountId)
            $0.member("accountId", account.accountId)
            $0.member("accountType", account.type.rawValue)
            $0.member("emailAddress", account.email)
            if !details { $0.member("avatarUrls", stringMap: [:]) }
            $0.member("displayName", account.displayName)
            $0.member("active", true)
            $0.member("timeZone", "Etc/UTC")
            if !details { $0.member("locale", "en_US") }
        }
    }
}

/// The platform's `Group`, answered by group creation and membership changes.
struct GroupBody: Encodable {
    struct Users: Encodable {
        let size: Int
        /// Always empty: the site does not expand a group's users.
        let items: [String]
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

/// One page of the platform's `PageBean...` shapes: `PageBeanUser` (`GET /rest/api/3/user/bulk`)
/// and `PageBeanUserDetails` (`GET /rest/api/3/group/member`).
struct PageBody<Value: JSONBody>: JSONBody {
    let `self`: String
    let nextPage: String?
    let maxResults: Int
    let startAt: Int
    let total: Int
    let isLast: Bool
    let values: [Value]

    /// The page of `values` at `paging` among `total`, its own and its next page's links built
    /// from `path` (which already holds a query).
    init(path: String, paging: PageRequest, total: Int, values: [Value]) {
        let pagePath = path + "&maxResults=\(paging.maxResults)"
        isLast = paging.startAt + values.count >= total
        self.`self` = pagePath + "&startAt=\(paging.startAt)"
        nextPage = isLast ? nil : pagePath + "&startAt=\(paging.startAt + values.count)"
        maxResults = paging.maxResults
        startAt = paging.startAt
        self.total = total
        self.values = values
    }

    func write(to json: inout JSONWriter) {
        json.object {
            $0.member("self", self.`self`)
            if let nextPage { $0.member("nextPage", nextPage) }
            $0.member("maxResults", maxResults)
            $0.member("startAt", startAt)
            $0.member("total", total)
            $0.member("isLast", isLast)
            $0.member("values", body: values)
        }
    }
}

/// The platform's error shape: `{"errorMessages":[...],"errors":{...}}`.
struct PlatformErrorBody: JSONBody {
    let errorMessages: [String]
    let errors: [String: String]

    func write(to json: inout JSONWriter) {
        json.object {
            $0.member("errorMessages", strings: errorMessages)
            $0.member("errors", stringMap: errors)
        }
    }
}

/// The service desk's error shape: `{"errorMessage":"...","i18nErrorMessage":{...}}`.
struct ServiceDeskErrorBody: JSONBody {
    let errorMessage: String
    /// The message key, this site's own.
    let i18nKey: String

    func write(to json: inout JSONWriter) {
        json.object {
            $0.member("errorMessage", errorMessage)
            $0.member("i18nErrorMessage") {
                $0.member("i18nKey", i18nKey)
                $0.member("parameters", strings: [])
            }
        }
    }
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
    /// Requests to the Atlassian endpoints since the site started (this site's own figure).
    let apiRequests: Int
    /// Answers a `mode=burst` fault injection sent instead of handling the request.
    let injectedBurstFaults: Int
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
    /// An answer whose body `JSONEncoder` writes: for the rarer bodies.
    static func json(_ value: some Encodable, status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return answer(ByteBuffer(bytes: data), status: status, headers: headers)
    }

    /// An answer whose body writes itself: for the bodies on the creation path.
    static func json(_ value: some JSONBody, status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        answer(JSONWriter.text(of: value), status: status, headers: headers)
    }

    private static func answer(_ body: ByteBuffer, status: HTTPResponse.Status, headers: HTTPFields) -> Response {
        var headers = headers
        headers[.contentType] = "application/json;charset=UTF-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body))
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
            ServiceDeskErrorBody(errorMessage: message, i18nKey: "jsm-migrate.cloud-site." + key),
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
        if let flatType = type as? any FlatDecodable.Type, let object = FlatJSONObject.parse(buffer),
            let value = try? flatType.init(flat: object) as? Value
        {
            return value
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

    /// The products of `POST /rest/api/3/user`: Atlassian's keys only, canonical; none given means
    /// the default access (every product), `[]` means no access.
    static func products(_ raw: [String]?) -> Result<[String], BodyProblem> {
        guard let raw else { return .success(JiraProduct.all) }
        guard raw.count <= 16 else { return .failure(BodyProblem("The field 'products' lists too many products.")) }
        if let unknown = raw.first(where: { !JiraProduct.all.contains($0) }) {
            return .failure(
                BodyProblem(
                    "The product '\(unknown.prefix(64))' is not valid; use "
                        + JiraProduct.all.joined(separator: ", ") + "."))
        }
        return .success(JiraProduct.canonical(raw))
    }

    /// A display name: trimmed, defaulting to the email, at most 255 characters.
    static func displayName(_ raw: String?, email: NormalizedEmail, field: String) -> Result<String, BodyProblem> {
        guard let raw else { return .success(email.value) }
        // Checked on bytes first so a huge value is refused without walking its characters.
        guard raw.utf8.count <= maxNameLength * 4 else {
            return .failure(BodyProblem("The field '\(field)' must be at most \(maxNameLength) characters."))
        }
        // Most names have nothing to trim: looking at both ends first skips Foundation's trimming.
        let scalars = raw.unicodeScalars
        let trimmed =
            (scalars.first?.properties.isWhitespace == false && scalars.last?.properties.isWhitespace == false)
            ? raw : raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count <= maxNameLength else {
            return .failure(BodyProblem("The field '\(field)' must be at most \(maxNameLength) characters."))
        }
        return .success(trimmed.isEmpty ? email.value : trimmed)
    }
}
