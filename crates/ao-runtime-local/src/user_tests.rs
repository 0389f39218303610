//! Resolving `--worker-user` and checking what the worker user can reach, from mode bits only
//! (no root needed: the "worker user" is a uid that owns nothing here).

use std::os::unix::fs::PermissionsExt;

use super::*;

/// A uid and gid nobody on the test machine uses.
const STRANGER: WorkerUser = WorkerUser {
    name: None,
    uid: 54_321,
    gid: 54_321,
};

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A folder every user may pass through, under which tests build their layouts.
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    chmod(t.path(), 0o755);
    t
}

fn program(dir: &Path, mode: u32) -> PathBuf {
    let p = dir.join("prog");
    fs::write(&p, "#!/bin/sh\n").unwrap();
    chmod(&p, mode);
    p
}

#[test]
fn names_and_ids_resolve_and_root_is_refused() {
    let nobody = resolve_worker_user("nobody").unwrap();
    assert_eq!(nobody.name.as_deref(), Some("nobody"));
    assert_ne!(nobody.uid, 0);
    assert_eq!(
        resolve_worker_user(&nobody.uid.to_string()).unwrap(),
        nobody
    );
    let with_group = resolve_worker_user(&format!("nobody:{}", 4242)).unwrap();
    assert_eq!(with_group.ids(), (nobody.uid, 4242));
    // A uid the system does not know is taken as it is.
    let bare = resolve_worker_user("54321").unwrap();
    assert_eq!((bare.name.clone(), bare.ids()), (None, (54_321, 54_321)));
    assert!(matches!(
        resolve_worker_user("root"),
        Err(WorkerUserError::Root)
    ));
    assert!(matches!(
        resolve_worker_user("0:100"),
        Err(WorkerUserError::Root)
    ));
    for group_root in ["nobody:0", "nobody:root", "65534:0"] {
        assert!(
            matches!(resolve_worker_user(group_root), Err(WorkerUserError::Root)),
            "{group_root}"
        );
    }
    let e = resolve_worker_user("no-such-user-ao").unwrap_err();
    assert!(matches!(e, WorkerUserError::NoSuchUser(ref u) if u == "no-such-user-ao"));
    assert!(e.fix().contains("useradd"), "{}", e.fix());
    let e = resolve_worker_user("nobody:no-such-group-ao").unwrap_err();
    assert!(matches!(e, WorkerUserError::NoSuchGroup(ref g) if g == "no-such-group-ao"));
}

#[test]
fn the_data_dir_must_be_reachable() {
    let t = open_tempdir();
    let parent = t.path().join("home");
    let data = parent.join("data");
    fs::create_dir_all(&data).unwrap();
    // Like /root: private to its owner.
    chmod(&parent, 0o700);
    let e = check_access(&STRANGER, &data, &[]).unwrap_err();
    match &e {
        WorkerUserError::CannotTraverse { dir, mode, .. } => {
            assert_eq!((dir.as_path(), *mode), (parent.as_path(), 0o700));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.fix().contains("--data-dir"), "{}", e.fix());
    assert!(e.to_string().contains("mode 700"), "{e}");
    // Traversable, not listable: enough.
    chmod(&parent, 0o711);
    check_access(&STRANGER, &data, &[]).unwrap();
    // A data dir that does not exist yet is made by `serve`.
    check_access(&STRANGER, &parent.join("later/data"), &[]).unwrap();
}

#[test]
fn serve_opens_its_own_data_dir_but_not_a_shared_one() {
    let t = open_tempdir();
    let data = t.path().join("data");
    fs::create_dir_all(data.join("workers")).unwrap();
    // Ours and private: `serve` sets 0711 itself.
    chmod(&data, 0o700);
    chmod(&data.join("workers"), 0o700);
    check_access(&STRANGER, &data, &[]).unwrap();
    // Sticky (shared): `serve` leaves it, so its mode must already allow passing.
    chmod(&data, 0o1770);
    let e = check_access(&STRANGER, &data, &[]).unwrap_err();
    assert!(
        matches!(e, WorkerUserError::CannotTraverse { ref dir, .. } if dir == &data),
        "{e:?}"
    );
    chmod(&data, 0o1777);
    check_access(&STRANGER, &data, &[]).unwrap();
}

#[test]
fn programs_must_be_executable_by_the_worker_user() {
    let t = open_tempdir();
    let data = t.path().join("data");
    let bin = t.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let prog = program(&bin, 0o700);
    let e = check_access(&STRANGER, &data, &[&prog]).unwrap_err();
    assert!(
        matches!(e, WorkerUserError::CannotExecute { ref program, mode: 0o700, .. } if program == &prog),
        "{e:?}"
    );
    assert!(e.fix().contains("install"), "{}", e.fix());
    chmod(&prog, 0o755);
    check_access(&STRANGER, &data, &[&prog]).unwrap();
    // Executable, but in a folder the worker user cannot enter (a checkout under /root).
    chmod(&bin, 0o700);
    let e = check_access(&STRANGER, &data, &[&prog]).unwrap_err();
    assert!(
        matches!(e, WorkerUserError::ProgramUnreachable { ref dir, ref program, .. } if dir == &bin && program == &prog),
        "{e:?}"
    );
    assert!(e.fix().contains("cargo install"), "{}", e.fix());
    chmod(&bin, 0o755);
    // Reached through a symbolic link: the target's folders count too.
    let link_dir = t.path().join("links");
    fs::create_dir(&link_dir).unwrap();
    let link = link_dir.join("prog");
    std::os::unix::fs::symlink(&prog, &link).unwrap();
    check_access(&STRANGER, &data, &[&link]).unwrap();
    chmod(&bin, 0o700);
    assert!(check_access(&STRANGER, &data, &[&link]).is_err());
    chmod(&bin, 0o755);
    let missing = bin.join("missing");
    let e = check_access(&STRANGER, &data, &[&missing]).unwrap_err();
    assert!(matches!(e, WorkerUserError::Inspect { .. }), "{e:?}");
}

#[test]
fn the_owner_bits_decide_for_the_owner_then_the_group_bits() {
    let t = open_tempdir();
    let f = program(t.path(), 0o070);
    let meta = fs::metadata(&f).unwrap();
    let owner = WorkerUser {
        name: None,
        uid: meta.uid(),
        gid: 54_321,
    };
    let member = WorkerUser {
        name: None,
        uid: 54_321,
        gid: meta.gid(),
    };
    assert!(!allows(&owner, &meta, EXEC), "the owner's bits are 0");
    assert!(allows(&member, &meta, EXEC));
    assert!(!allows(&STRANGER, &meta, EXEC));
    chmod(&f, 0o001);
    let meta = fs::metadata(&f).unwrap();
    assert!(allows(&STRANGER, &meta, EXEC));
    assert!(!allows(&member, &meta, EXEC), "the group's bits are 0");
}

#[test]
fn switching_user_needs_root() {
    let t = open_tempdir();
    let data = t.path().join("data");
    let me = WorkerUser {
        name: None,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    assert!(can_switch_to(&me), "being the user already needs nothing");
    let result = check_worker_user("54321", &data, &[]);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(result.unwrap(), STRANGER);
    } else {
        let e = result.unwrap_err();
        assert!(matches!(e, WorkerUserError::CannotSwitch { .. }), "{e:?}");
        assert!(e.fix().contains("as root"), "{}", e.fix());
    }
}
