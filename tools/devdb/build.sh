#!/usr/bin/env bash
# Builds devdb (FerretDB v1.24.2 on SQLite) to the path in $1, with five fixes to FerretDB.
#
# FerretDB v1.24.2 indexes `_id` on the SQLite expression  _ferretdb_sjson->"_id"  but looks
# documents up with  _ferretdb_sjson->'$._id'. Equivalent, but not the same expression, so
# SQLite never uses the index: every _id lookup, update and delete scans the table and
# parses each row's JSON (EXPLAIN QUERY PLAN: SCAN vs SEARCH ... USING INDEX). The fix makes
# the lookup use the indexed expression; measured at 10,000 documents, find/update by _id go
# from 7-650 ms to 0.7 ms. The module's source comes from the Go module proxy, is patched in
# a temporary copy, and is used through a temporary go.mod (-modfile): nothing is vendored.
set -euo pipefail

out="${1:?usage: build.sh OUTPUT}"
go="${GO:-go}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$here"
"$go" mod download github.com/FerretDB/FerretDB
src="$("$go" list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)"
cp -r "$src" "$work/ferretdb"
chmod -R u+w "$work/ferretdb"

metadata="$work/ferretdb/internal/backends/sqlite/metadata/metadata.go"
sed -i "s|IDColumn = DefaultColumn + \"->'\$._id'\"|IDColumn = DefaultColumn + \`->\"_id\"\`|" "$metadata"
if ! grep -qF 'IDColumn = DefaultColumn + `->"_id"`' "$metadata"; then
    echo "devdb build: FerretDB's IDColumn line changed; the _id index fix no longer applies" >&2
    exit 1
fi

# Second fix: FerretDB pushes `_id` down only when it is the filter's only key, so a
# conditional write ({_id, rev: 3}) scans the whole table. Every caller of Query applies the
# full filter again afterwards (FilterIterator, FilterDocument), so looking the row up by `_id`
# first is always safe: both Query and Explain take `_id` from any filter that has it.
collection="$work/ferretdb/internal/backends/sqlite/collection.go"
if [ "$(grep -c 'if params.Filter.Len() == 1 {' "$collection")" != 2 ]; then
    echo "devdb build: FerretDB's _id pushdown condition changed; the compound-filter fix no longer applies" >&2
    exit 1
fi
sed -i 's/if params.Filter.Len() == 1 {/if params.Filter.Has("_id") {/' "$collection"

# Third fix: `{_id: {$in: [...]}}` scans the whole table too, so reading a page of 20
# messages, or the chat list's 50 conversations, took one command per document. Query and
# Explain now push an `$in` of strings or ObjectIDs down as `_id IN (?, ...)` (the same index);
# the callers' FilterIterator still applies the full filter.
# Fourth fix, in the same file: a prefix range of `_id`s ({$gte: "o:", $lt: "o;"}, how the
# outbox relay finds its entries among the messages) scans the table too; it is pushed down as
# `_id >= ? AND _id < ?` (EXPLAIN QUERY PLAN: SEARCH ... USING INDEX ..._id_ (<expr>>? AND
# <expr><?)).
cat >"$work/ferretdb/internal/backends/sqlite/id_in_pushdown.go" <<'GO'
package sqlite

import (
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/util/must"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
)

// maxIDsIn stays well below SQLite's smallest limit on bound parameters (999).
const maxIDsIn = 500

// idInClause turns {$in: [ids]}, or a prefix range {$gte: P, $lt: Q} (Q is P with its last
// character incremented: every string starting with P), into a WHERE clause on the indexed
// _id expression.
func idInClause(condition *types.Document) (string, []any, bool) {
	if condition.Len() == 2 {
		return idPrefixClause(condition)
	}
	if condition.Len() != 1 {
		return "", nil, false
	}
	value, err := condition.Get("$in")
	if err != nil {
		return "", nil, false
	}
	ids, ok := value.(*types.Array)
	if !ok || ids.Len() == 0 || ids.Len() > maxIDsIn {
		return "", nil, false
	}
	args := make([]any, 0, ids.Len())
	for i := 0; i < ids.Len(); i++ {
		id, _ := ids.Get(i)
		switch id.(type) {
		case string, types.ObjectID:
			marshaled, err := sjson.MarshalSingleValue(id)
			if err != nil {
				return "", nil, false
			}
			args = append(args, string(marshaled))
		default:
			return "", nil, false
		}
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	return ` WHERE ` + metadata.IDColumn + ` IN (` + placeholders + `)`, args, true
}

// idPrefixClause pushes down {$gte: P, $lt: Q} when it means "starts with P": P plain
// printable ASCII without quote or backslash, Q the same but for a last character one
// higher. The indexed expression holds _id as JSON text ("P..."), which orders exactly like
// the string for such bounds, so the range misses no matching document; an _id of another
// type is JSON of another shape, outside it. FilterIterator applies the filter again.
func idPrefixClause(condition *types.Document) (string, []any, bool) {
	low, errLow := condition.Get("$gte")
	high, errHigh := condition.Get("$lt")
	if errLow != nil || errHigh != nil {
		return "", nil, false
	}
	from, okLow := low.(string)
	to, okHigh := high.(string)
	if !okLow || !okHigh || len(from) == 0 || len(from) != len(to) {
		return "", nil, false
	}
	for i := 0; i < len(from); i++ {
		if from[i] < 0x20 || from[i] > 0x7e || from[i] == '"' || from[i] == '\\' {
			return "", nil, false
		}
	}
	last := len(from) - 1
	if from[:last] != to[:last] || to[last] != from[last]+1 {
		return "", nil, false
	}
	args := []any{
		string(must.NotFail(sjson.MarshalSingleValue(from))),
		string(must.NotFail(sjson.MarshalSingleValue(to))),
	}
	return ` WHERE ` + metadata.IDColumn + ` >= ? AND ` + metadata.IDColumn + ` < ?`, args, true
}
GO
if [ "$(grep -c 'args = \[\]any{string(must.NotFail(sjson.MarshalSingleValue(v)))}' "$collection")" != 2 ]; then
    echo "devdb build: FerretDB's _id pushdown cases changed; the \$in fix no longer applies" >&2
    exit 1
fi
perl -0pi -e 's/(\t\t\targs = \[\]any\{string\(must\.NotFail\(sjson\.MarshalSingleValue\(v\)\)\)\}\n)(\t\t\})/$1\t\tcase *types.Document:\n\t\t\tif clause, ids, ok := idInClause(v.(*types.Document)); ok {\n\t\t\t\tPUSHDOWN_MARK\n\t\t\t\twhereClause, args = clause, ids\n\t\t\t}\n$2/g' "$collection"
# Explain reports the pushdown (callers ask it); Query has no such flag.
perl -0pi -e 's/\t*PUSHDOWN_MARK\n//' "$collection"
perl -0pi -e 's/PUSHDOWN_MARK/filterPushdown = true/' "$collection"
if grep -q PUSHDOWN_MARK "$collection" || [ "$(grep -c 'idInClause(v.(\*types.Document))' "$collection")" != 2 ]; then
    echo "devdb build: the \$in pushdown did not apply" >&2
    exit 1
fi

# Fifth fix: an update holds its query's connection while it opens the write transaction on
# a second one (handler/msg_update.go: Query, then UpdateAll inside InTransaction). With a
# pool of 100 connections, 100 concurrent updates each hold one and wait for another, and
# the server stops answering for good (seen: a benchmark creating conversations 128 at a
# time; 300 open queries, 280 goroutines waiting in database/sql's conn). The pool is left
# unbounded; SQLite itself still admits one writer at a time (busy_timeout queues them).
pool="$work/ferretdb/internal/backends/sqlite/metadata/pool/opendb.go"
if [ "$(grep -c 'db.SetMaxOpenConns(100)' "$pool")" != 1 ]; then
    echo "devdb build: FerretDB's connection pool setup changed; the pool fix no longer applies" >&2
    exit 1
fi
sed -i 's/db.SetMaxOpenConns(100)/db.SetMaxOpenConns(0)/' "$pool"

cp go.mod "$work/devdb.mod"
cp go.sum "$work/devdb.sum"
echo "replace github.com/FerretDB/FerretDB => $work/ferretdb" >>"$work/devdb.mod"
GOFLAGS="${GOFLAGS:-} -buildvcs=false" "$go" build -trimpath -modfile="$work/devdb.mod" -o "$out" .
