"""IMAP command handlers, one module per command family; ``HANDLERS`` maps command type
to handler (a generator: yields responses, returns the tagged one).  Imports no
twisted.internet."""

from __future__ import annotations

from typing import Any

from dualmail.imap.ops import (append, auth, basic, copy, expunge, fetch, mailboxes, quota,
                               search, select, store, urlauth)
from dualmail.imap.ops import metadata, notify
from dualmail.imap.wire import commands as c

HANDLERS: dict[type[c.Command], Any] = {
    c.Capability: basic.capability,
    c.Noop: basic.noop,
    c.Check: basic.noop,
    c.Logout: basic.logout,
    c.Id: basic.id_,
    c.Enable: basic.enable,
    c.Namespace: basic.namespace,
    c.Idle: basic.idle,
    c.GetJmapAccess: basic.getjmapaccess,
    c.StartTLS: auth.starttls,
    c.Login: auth.login,
    c.Authenticate: auth.authenticate,
    c.Select: select.select,
    c.Examine: select.select,
    c.Close: select.close,
    c.Unselect: select.unselect,
    c.Create: mailboxes.create,
    c.Delete: mailboxes.delete,
    c.Rename: mailboxes.rename,
    c.Subscribe: mailboxes.subscribe,
    c.Unsubscribe: mailboxes.subscribe,
    c.List: mailboxes.list_,
    c.Lsub: mailboxes.lsub,
    c.Status: mailboxes.status,
    c.GetQuota: quota.getquota,
    c.GetQuotaRoot: quota.getquotaroot,
    c.SetQuota: quota.setquota,
    c.Append: append.append,
    c.Replace: append.replace,
    c.GenUrlAuth: urlauth.genurlauth,
    c.ResetKey: urlauth.resetkey,
    c.UrlFetch: urlauth.urlfetch,
    c.Unauthenticate: auth.unauthenticate,
    c.Expunge: expunge.expunge,
    c.Fetch: fetch.fetch,
    c.Store: store.store,
    c.Copy: copy.copy,
    c.Move: copy.copy,
    c.Search: search.search,
    c.Sort: search.sort,
    c.Thread: search.thread,
    c.GetMetadata: metadata.getmetadata,
    c.SetMetadata: metadata.setmetadata,
    c.Notify: notify.notify,
    c.CancelUpdate: search.cancelupdate,
    c.Compress: basic.compress,
}
