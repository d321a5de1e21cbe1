//! A child process that is killed and reaped when it goes.

use std::process::Child;

pub struct Process(pub Child);

impl Process {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
