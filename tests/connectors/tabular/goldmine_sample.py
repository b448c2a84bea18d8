"""A small GoldMine database in SQLite with GoldMine's own table and column names (the layout
of the published GoldMine table definitions: CONTACT1, CONTACT2, OPMGR, CAL, CONTHIST, CONTSUPP,
USERS), holding a reseller's realistic pipeline."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

TODAY = dt.date(2026, 11, 24)

SCHEMA = """
CREATE TABLE USERS (USERNAME CHAR(8), NAME VARCHAR(26), USERGROUP CHAR(8), LASTDATE DATETIME,
  LASTTIME CHAR(5), RECID CHAR(15));
CREATE TABLE CONTACT1 (ACCOUNTNO CHAR(20), COMPANY VARCHAR(40), CONTACT VARCHAR(40),
  KEY1 VARCHAR(20), KEY2 VARCHAR(20), STATUS CHAR(3), OWNER CHAR(8), LASTDATE DATETIME,
  LASTTIME CHAR(5), RECID CHAR(15));
CREATE TABLE CONTACT2 (ACCOUNTNO CHAR(20), UPARTNER VARCHAR(20), UEMPLOYEES VARCHAR(10),
  LASTDATE DATETIME, RECID CHAR(15));
CREATE TABLE OPMGR (OPID CHAR(15), RECTYPE CHAR(3), ACCOUNTNO CHAR(20), USERID CHAR(8),
  FLAGS CHAR(10), COMPANY VARCHAR(40), CONTACT VARCHAR(40), NAME VARCHAR(50), STATUS VARCHAR(50),
  CYCLE VARCHAR(50), STAGE VARCHAR(30), SOURCE VARCHAR(30), F1 VARCHAR(20), F2 VARCHAR(20),
  F3 VARCHAR(10), STARTDATE DATETIME, CLOSEDDATE DATETIME, CLOSEBY DATETIME, FORAMT FLOAT,
  FORPROB INTEGER, CLOSEAMT FLOAT, U_STAGE VARCHAR(30), RECID CHAR(15));
CREATE TABLE CAL (USERID CHAR(8), ACCOUNTNO CHAR(20), ONDATE DATETIME, ONTIME CHAR(5),
  ACTVCODE CHAR(3), RECTYPE CHAR(1), REF VARCHAR(80), LOPRECID CHAR(15), RECID CHAR(15));
CREATE TABLE CONTHIST (USERID CHAR(8), ACCOUNTNO CHAR(20), SRECTYPE CHAR(1), RECTYPE CHAR(10),
  ONDATE DATETIME, ONTIME CHAR(5), ACTVCODE CHAR(3), RESULTCODE CHAR(3), REF VARCHAR(65),
  LOPRECID CHAR(15), RECID CHAR(15));
CREATE TABLE CONTSUPP (ACCOUNTNO CHAR(20), RECTYPE CHAR(1), CONTACT VARCHAR(40), TITLE VARCHAR(35),
  CONTSUPREF VARCHAR(35), DEAR VARCHAR(20), EXT CHAR(6), LINKACCT CHAR(20), LASTUSER CHAR(8),
  RECID CHAR(15));
"""

USERS = [
    ("RAY", "Ray Ortiz", "CHANNEL"),
    ("DANA", "Dana Hill", "DIRECT"),
    ("MASTER", "GoldMine Admin", "ADMIN"),
]
CONTACT1 = [  # ACCOUNTNO, COMPANY, CONTACT, KEY1 (contact type)
    ("A6091500017(/7A4EZ", "Northwind Systems", "Pat Lee", "Partner"),
    ("B2071219354!5G*J+E", "Contoso VAR", "Sam Roe", "Partner"),
    ("C3110811482%]1UX3L", "Boeing", "Ann Kim", "Customer"),
    ("D5010312233-M@XW4D", "Airbus", "Luc Ferrand", "Customer"),
    ("E7081013090*N@A4VK", "Embraer", "Rui Costa", "Prospect"),
]
CONTACT2 = [  # ACCOUNTNO, UPARTNER (partner of record), UEMPLOYEES
    ("C3110811482%]1UX3L", "A6091500017(/7A4EZ", "140000"),
    ("D5010312233-M@XW4D", "", "130000"),
    ("E7081013090*N@A4VK", "", "18000"),
]
OPMGR = [  # RECID, RECTYPE, ACCOUNTNO, USERID, NAME, STATUS, STAGE, SOURCE, F1, CLOSEDDATE,
    # CLOSEBY, FORAMT, FORPROB
    (
        "OPP0001",
        "O",
        "C3110811482%]1UX3L",
        "RAY",
        "Boeing fleet licences",
        "Open",
        "Proposal",
        "Partner",
        "A6091500017(/7A4EZ",
        None,
        "2026-12-15 00:00:00",
        120000.0,
        60,
    ),
    (
        "OPP0002",
        "O",
        "D5010312233-M@XW4D",
        "DANA",
        "Airbus cabin upgrade",
        "Open",
        "Qualified",
        "Web",
        "",
        None,
        "2027-01-20 00:00:00",
        80000.0,
        40,
    ),
    (
        "OPP0003",
        "O",
        "E7081013090*N@A4VK",
        "RAY",
        "Embraer pilot",
        "Won",
        "Closed",
        "Partner",
        "B2071219354!5G*J+E",
        "2026-10-02 00:00:00",
        "2026-09-30 00:00:00",
        15000.0,
        100,
    ),
    (
        "OPP0001T",
        "OT",
        "C3110811482%]1UX3L",
        "DANA",
        "Team member",
        "",
        "",
        "",
        "",
        None,
        None,
        None,
        None,
    ),
]
CAL = [  # RECID, USERID, ACCOUNTNO, ONDATE, REF, LOPRECID
    (
        "CAL0001",
        "RAY",
        "C3110811482%]1UX3L",
        "2026-11-27 00:00:00",
        "Legal review of MSA",
        "OPP0001",
    ),
]
CONTHIST = [
    ("HIS0001", "DANA", "D5010312233-M@XW4D", "2026-11-02 00:00:00", "Discovery call", "OPP0002"),
]
CONTSUPP = [  # RECID, ACCOUNTNO, RECTYPE, CONTACT, TITLE (linked accountno), EXT, LASTUSER
    ("REF0001", "E7081013090*N@A4VK", "R", "For Contoso VAR", "B2071219354!5G*J+E", "R", "RAY"),
    ("REF0002", "B2071219354!5G*J+E", "R", "To Embraer", "E7081013090*N@A4VK", "T", "RAY"),
    ("PRO0001", "C3110811482%]1UX3L", "P", "Licences", "", "", "RAY"),
]


def build(path: Path) -> Path:
    """Write the sample GoldMine database to ``path``."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO USERS (USERNAME, NAME, USERGROUP) VALUES (?, ?, ?)", USERS)
    db.executemany(
        "INSERT INTO CONTACT1 (ACCOUNTNO, COMPANY, CONTACT, KEY1) VALUES (?, ?, ?, ?)", CONTACT1
    )
    db.executemany(
        "INSERT INTO CONTACT2 (ACCOUNTNO, UPARTNER, UEMPLOYEES) VALUES (?, ?, ?)", CONTACT2
    )
    db.executemany(
        "INSERT INTO OPMGR (RECID, RECTYPE, ACCOUNTNO, USERID, NAME, STATUS, STAGE, SOURCE, F1, "
        "CLOSEDDATE, CLOSEBY, FORAMT, FORPROB) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        OPMGR,
    )
    db.executemany(
        "INSERT INTO CAL (RECID, USERID, ACCOUNTNO, ONDATE, REF, LOPRECID) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        CAL,
    )
    db.executemany(
        "INSERT INTO CONTHIST (RECID, USERID, ACCOUNTNO, ONDATE, REF, LOPRECID) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        CONTHIST,
    )
    db.executemany(
        "INSERT INTO CONTSUPP (RECID, ACCOUNTNO, RECTYPE, CONTACT, TITLE, EXT, LASTUSER) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        CONTSUPP,
    )
    db.commit()
    db.close()
    return path


#: What the admin adds to the preset for this site: its stage names and user groups.
SITE_TABLES = {
    "user": {"values": {"role": {"CHANNEL": "channel", "DIRECT": "direct", "*": "other"}}},
    "opportunity": {
        "values": {
            "stage": {
                "Qualified": "sql",
                "Proposal": "draft_proposal",
                "Closed": "closed_won",
            }
        }
    },
}
