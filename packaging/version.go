package packaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// debianVersion is the upstream part of a Debian version without epoch or
// revision (deb-version(7)): a native package's whole version.
var debianVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// Output of `git describe --tags --always --dirty`: a tag, optionally
// followed by -<commits since>-g<sha>; or a bare sha when no tag is
// reachable; either optionally followed by -dirty.
var (
	describeTag  = regexp.MustCompile(`^(.+?)(?:-([0-9]+)-g([0-9a-f]{4,40}))?(-dirty)?$`)
	describeHash = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
	commitDate   = regexp.MustCompile(`^[0-9]{8}$`)
)

// Version maps the output of `git describe --tags --always --dirty` and
// the commit's date (YYYYMMDD, UTC) to a Debian version that sorts the
// way the commits do (dpkg --compare-versions):
//
//	v1.2.0                 1.2.0
//	v1.2.0-rc1             1.2.0~rc1 (before 1.2.0)
//	v1.2.0-5-gabc1234      1.2.0+git20261121.5.abc1234 (after 1.2.0)
//	abc1234 (no tag)       0.0~git20261121.abc1234
//	...-dirty              ...+dirty, or .dirty after a +
func Version(describe, date string) (string, error) {
	describe = strings.TrimSpace(describe)
	if !commitDate.MatchString(date) {
		return "", fmt.Errorf("commit date %q: want YYYYMMDD", date)
	}
	var v string
	var dirty bool
	if m := describeHash.FindStringSubmatch(describe); m != nil {
		v, dirty = "0.0~git"+date+"."+m[1], m[2] != ""
	} else if m := describeTag.FindStringSubmatch(describe); m != nil {
		tag := strings.TrimPrefix(m[1], "v")
		if tag == "" || tag[0] < '0' || tag[0] > '9' {
			return "", fmt.Errorf("git describe %q: tag %q does not start with a version number (want v1.2.3)", describe, m[1])
		}
		// A hyphen in a tag marks a pre-release (v1.2.0-rc1): ~ sorts it
		// before the release.
		v = strings.ReplaceAll(tag, "-", "~")
		if m[2] != "" {
			v += "+git" + date + "." + m[2] + "." + m[3]
		}
		dirty = m[4] != ""
	} else {
		return "", fmt.Errorf("git describe %q: not a tag or commit", describe)
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if !debianVersion.MatchString(v) {
		return "", fmt.Errorf("git describe %q gives %q, not a valid Debian version (deb-version(7))", describe, v)
	}
	return v, nil
}

// GitVersion returns Version for the checkout at dir, asking git.
func GitVersion(ctx context.Context, dir string) (string, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s in %s: %w", strings.Join(args, " "), dir, exitError(err))
		}
		return strings.TrimSpace(string(out)), nil
	}
	describe, err := git("describe", "--tags", "--always", "--dirty")
	if err != nil {
		return "", err
	}
	date, err := git("log", "-1", "--format=%cd", "--date=format-local:%Y%m%d")
	if err != nil {
		return "", err
	}
	return Version(describe, date)
}

// exitError adds a failed command's stderr to its error.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
