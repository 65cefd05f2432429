"""Graded checks: authoring API (labs), learner widgets (notebooks), instructor pipeline (CLI).

Lab authors:   from vfiolab.grading import check, observe, Fail, expect_equal, expect_bytes
Learners:      import vfiolab.grading as grading; grading.check_exercise("ex1"); grading.scoreboard()
Instructors:   vfiolab release OUTDIR; vfiolab grade SUBMISSIONS --out GRADES

The author's guide is README.md beside this file.
"""
from .checks import Fail, check, observe
from .expect import expect, expect_bits, expect_bytes, expect_equal
from .learner import check_exercise, scoreboard
from .observations import real_board

__all__ = ["check", "observe", "Fail", "expect", "expect_equal", "expect_bytes", "expect_bits",
           "real_board", "check_exercise", "scoreboard"]
