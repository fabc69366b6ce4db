package dashboard

// Dashboard sessions: a signed cookie per login, its CSRF token, and the
// login and logout that start and end it.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/taskwheel/tasks/internal/web"
)

// session is a logged-in browser.
type session struct {
	key     *web.Key // nil on the open dashboard
	id      string   // random, base64url
	expires time.Time
	csrf    string
}

// sessionMAC signs a session's ID and expiry with key, from sessionKey.
func sessionMAC(key []byte, id string, expires int64) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "session\x00%d\x00%s", expires, id)
	return m.Sum(nil)
}

// csrfToken is the CSRF token of a session, signed by key, from sessionKey.
func csrfToken(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession starts a session for the key u.keys[i] (on the open
// dashboard, i is 0 and there is no key), sets its cookie and returns it.
func (u *ui) newSession(w http.ResponseWriter, r *http.Request, i int) *session {
	var k *web.Key
	if !u.open {
		k = &u.keys[i]
	}
	b := make([]byte, 16)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	expires := u.now().Add(sessionTTL).Unix()
	value := fmt.Sprintf("%d.%s.%s", expires, id,
		base64.RawURLEncoding.EncodeToString(sessionMAC(u.macKeys[i], id, expires)))
	http.SetCookie(w, u.cookie(r, value, int(sessionTTL/time.Second)))
	return &session{key: k, id: id, expires: time.Unix(expires, 0), csrf: csrfToken(u.macKeys[i], id)}
}

// cookie returns the session cookie with value; maxAge -1 deletes it.
func (u *ui) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     basePath(r) + "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
}

// session returns the request's session, or nil if it has none that is
// valid: signed by a current key, not expired, not logged out. It reads
// the store for the logout.
func (u *ui) session(r *http.Request) (*session, error) {
	s := u.signedSession(r)
	if s == nil {
		return nil, nil
	}
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	revoked, err := u.e.SessionRevoked(ctx, s.id)
	switch {
	case err != nil:
		return nil, err
	case revoked:
		return nil, nil
	}
	return s, nil
}

// signedSession returns the request's session if its cookie is signed by
// a current key and not expired, whether or not it was logged out.
func (u *ui) signedSession(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return nil
	}
	expires, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || !u.now().Before(time.Unix(expires, 0)) || time.Unix(expires, 0).After(u.now().Add(sessionTTL)) {
		return nil
	}
	id := parts[1]
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(id) != 22 {
		return nil
	}
	// Check the signature with every key, in constant time and without
	// stopping at a match, as web.FindKey does.
	match := -1
	for i, mac := range u.macKeys {
		eq := subtle.ConstantTimeCompare(got, sessionMAC(mac, id, expires))
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	s := &session{id: id, expires: time.Unix(expires, 0), csrf: csrfToken(u.macKeys[match], id)}
	if !u.open {
		s.key = &u.keys[match]
	}
	return s
}

// ---- login

type loginPage struct {
	Error string
}

func (u *ui) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	v := u.newView(r)
	if s, _ := u.session(r); u.open || s != nil { // on an error, the form
		http.Redirect(w, r, v.Base+"/", http.StatusSeeOther)
		return
	}
	v.Title, v.Page = "Log in", &loginPage{}
	u.render(w, r, http.StatusOK, "login", v)
}

// handleLogin checks the API key of the login form and starts a session. A
// login, too, must come from this origin.
func (u *ui) handleLogin(w http.ResponseWriter, r *http.Request) {
	v := u.newView(r)
	if err := u.origin.Check(r); err != nil {
		u.renderError(w, r, errCrossOrigin)
		return
	}
	if u.open {
		http.Redirect(w, r, v.Base+"/", http.StatusSeeOther)
		return
	}
	attempt, wait := u.logins.attempt(r, u.now())
	if attempt == nil {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		u.renderError(w, r, uiErrorf(http.StatusTooManyRequests, "Too many login attempts. Try again in %d seconds.", secs))
		return
	}
	if err := parseForm(w, r); err != nil {
		u.renderError(w, r, err)
		return
	}
	i := web.FindKey(u.keys, strings.TrimSpace(r.PostForm.Get("key")))
	if i < 0 {
		v.Title, v.Page = "Log in", &loginPage{Error: "This API key is not valid."}
		u.render(w, r, http.StatusUnauthorized, "login", v)
		return
	}
	attempt.succeeded()
	u.newSession(w, r, i)
	http.Redirect(w, r, v.Base+"/", http.StatusSeeOther)
}

func (u *ui) handleLogout(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	if err := u.e.RevokeSession(ctx, v.session.id, v.session.expires); err != nil {
		return err
	}
	http.SetCookie(w, u.cookie(r, "", -1))
	if u.open {
		return u.redirect(w, r, v.Base+"/")
	}
	return u.redirect(w, r, v.Base+"/login")
}
