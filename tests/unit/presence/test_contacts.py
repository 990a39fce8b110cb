from presence.contacts import contacts_from


def test_status_goes_only_through_conversations_up_to_the_size_limit() -> None:
    conversations = {
        "pair": ["me", "friend"],
        "team": ["me", "a", "b"],
        "crowd": ["me", *(f"member{n}" for n in range(10))],
    }
    contacts = contacts_from("me", conversations, broadcast_max_members=3)
    assert contacts.broadcast == {"friend", "a", "b"}
    assert contacts.everyone == {"friend", "a", "b", *(f"member{n}" for n in range(10))}


def test_a_contact_in_a_small_and_a_large_conversation_still_hears() -> None:
    conversations = {"pair": ["me", "x"], "crowd": ["me", "x", "y", "z"]}
    contacts = contacts_from("me", conversations, broadcast_max_members=2)
    assert contacts.broadcast == {"x"}
    assert "me" not in contacts.everyone
