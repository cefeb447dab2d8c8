//! @@crate@@: a HomeStation library. Nothing under libs/ depends on a service.

/// One error type for the crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is empty")]
    Empty(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Replace with what the library is for.
pub fn greeting(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::Empty("name"));
    }
    Ok(format!("hello, {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name_and_refuses_an_empty_one() {
        assert_eq!(greeting("lab").unwrap(), "hello, lab");
        assert!(matches!(greeting(""), Err(Error::Empty("name"))));
    }
}
