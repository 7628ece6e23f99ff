/// The JSON bodies of Atlassian's REST API that the adapter sends and reads: only the fields it
/// needs, so additions on Atlassian's side never break it.

/// `POST /rest/servicedeskapi/customer`.
struct CustomerCreateBody: Encodable {
    let email: String
    let displayName: String
}

/// `POST /rest/api/3/user`: `products: []` means no product access, so no licence and no invitation.
struct UserCreateBody: Encodable {
    let emailAddress: String
    let displayName: String
    let products: [String]
}

/// `POST /rest/api/3/group`.
struct GroupCreateBody: Encodable {
    let name: String
}

/// `POST /rest/api/3/group/user`.
struct GroupMemberBody: Encodable {
    let accountId: String
}

/// A user as the customer and user endpoints return it.
struct UserBody: Decodable {
    let accountId: String
    let accountType: String?
    let emailAddress: String?
}

/// A group as the group endpoints return it.
struct GroupBody: Decodable {
    let name: String
    let groupId: String?
}

/// `GET /rest/api/3/group/bulk`: a page of groups.
struct GroupPageBody: Decodable {
    let values: [GroupBody]
}

/// Either of Atlassian's error shapes: the platform's `{"errorMessages":[],"errors":{}}` or the
/// service desk's `{"errorMessage":"...","i18nErrorMessage":{...}}`.
struct ErrorBody: Decodable {
    let errorMessages: [String]?
    let errors: [String: String]?
    let errorMessage: String?

    /// Everything the site said, in one line.
    var text: String {
        var parts = errorMessages ?? []
        if let errorMessage { parts.append(errorMessage) }
        for (field, message) in (errors ?? [:]).sorted(by: { $0.key < $1.key }) {
            parts.append("\(field): \(message)")
        }
        return parts.joined(separator: "; ")
    }
}
